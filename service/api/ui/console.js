// The console: plain DOM, no framework, no build step. Every value from the API is written
// with textContent, never as HTML. The key lives in this tab's sessionStorage only.
"use strict";

const KEY_ITEM = "fraud-console-api-key";
const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function apiKey() {
  return sessionStorage.getItem(KEY_ITEM) || "";
}

class ApiError extends Error {}

async function call(method, path, body) {
  const headers = { "X-API-Key": apiKey() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const payload = await response.json().catch(() => null);
  if (!response.ok) {
    const error = payload && payload.error;
    const what = error ? `${error.code}: ${error.message}` : `HTTP ${response.status}`;
    throw new ApiError(`${response.status} ${what}`);
  }
  return payload;
}

function fixed(value, digits) {
  return typeof value === "number" ? value.toFixed(digits) : "-";
}

// One bar per row: signed bars grow left (negative) or right (positive) from the middle.
function bars(container, rows, { signed, scale }) {
  container.replaceChildren();
  const largest = scale || Math.max(1e-12, ...rows.map((r) => Math.abs(r.value)));
  for (const row of rows) {
    const track = el("div", "track");
    const bar = el("div", `bar ${row.kind}`);
    const share = Math.min(1, Math.abs(row.value) / largest);
    if (signed) {
      bar.style.width = `${share * 50}%`;
      bar.style.left = row.value >= 0 ? "50%" : `${50 - share * 50}%`;
    } else {
      bar.style.width = `${share * 100}%`;
      bar.style.left = "0";
    }
    track.append(bar);
    container.append(el("span", "label", row.label), track, el("span", "num", row.text));
  }
}

// --- scoring -----------------------------------------------------------------------------

let examples = {};

function requestBody() {
  let parsed;
  try {
    parsed = JSON.parse($("body").value);
  } catch (error) {
    throw new ApiError(`the body is not JSON: ${error.message}`);
  }
  if (Array.isArray(parsed)) parsed = { features: parsed };
  else if (parsed && !("features" in parsed) && !("transaction" in parsed)) {
    parsed = { transaction: parsed };
  }
  const explain = Number($("explain").value) || 8;
  return { ...parsed, explain: Math.max(1, Math.min(30, Math.round(explain))) };
}

async function score() {
  $("score-error").textContent = "";
  try {
    const answer = await call("POST", "/predict", requestBody());
    $("result").hidden = false;
    const decision = $("decision");
    decision.textContent = answer.is_fraud ? "FLAGGED" : "passed";
    decision.className = `badge ${answer.is_fraud ? "fraud" : "legit"}`;
    $("probability").textContent = fixed(answer.fraud_probability, 6);
    $("threshold").textContent = fixed(answer.threshold, 6);
    $("result-version").textContent = answer.model_version;
    $("base-value").textContent = fixed(answer.base_value, 3);
    bars($("reasons"), answer.reasons.map((r) => ({
      label: `${r.feature} = ${Number(r.value).toPrecision(6)}`,
      value: r.contribution,
      text: `${r.contribution >= 0 ? "+" : ""}${r.contribution.toFixed(3)}`,
      kind: r.contribution >= 0 ? "up" : "down",
    })), { signed: true });
    loadDrift();  // the row just scored counts in the window
  } catch (error) {
    $("result").hidden = true;
    $("score-error").textContent = error.message;
  }
}

// --- model card and history ---------------------------------------------------------------

function definitions(list, entries) {
  list.replaceChildren();
  for (const [term, value] of entries) list.append(el("dt", "", term), el("dd", "", value));
}

async function loadModel() {
  $("model-error").textContent = "";
  try {
    const [card, history] = await Promise.all([
      call("GET", "/model"), call("GET", "/model/history"),
    ]);
    definitions($("model-card"), [
      ["version", card.version],
      ["family", card.model_family],
      ["created", card.created_at],
      ["threshold", fixed(card.threshold, 6)],
      ["tuned for prevalence", `${fixed((card.prevalence || 0) * 100, 3)} %`],
    ]);
    const test = (card.metrics && card.metrics.test) || {};
    const body = $("model-metrics").tBodies[0];
    body.replaceChildren();
    for (const [name, key] of [["F1", "f1"], ["precision", "precision"], ["recall", "recall"],
      ["PR-AUC", "pr_auc"], ["ROC-AUC", "roc_auc"]]) {
      const tr = el("tr");
      tr.append(el("th", "", name), el("td", "", fixed(test[key], 4)));
      body.append(tr);
    }
    const rows = $("history").tBodies[0];
    rows.replaceChildren();
    for (const entry of history.entries) {
      const tr = el("tr");
      const why = entry.details && (entry.details.reason || entry.details.decision);
      const when = el("td", "", entry.promoted_at.replace("T", " ").slice(0, 16));
      when.title = entry.promoted_at;  // to the millisecond, on hover
      tr.append(when);
      for (const value of [entry.action, entry.version, entry.promoted_by || "-", why || ""]) {
        tr.append(el("td", "", String(value)));
      }
      rows.append(tr);
    }
  } catch (error) {
    $("model-error").textContent = error.message;
  }
}

// --- live quality -------------------------------------------------------------------------

async function loadLive() {
  $("live-error").textContent = "";
  try {
    const live = await call("GET", "/model/live-quality");
    const rows = $("live-table").tBodies[0];
    rows.replaceChildren();
    if (live.status !== "ready") {
      $("live-summary").textContent = live.problem;
      return;
    }
    const report = live.report;
    $("live-summary").textContent = `From \`fraudctl evaluate --live\` at ${report.generated_at}: ` +
      "the decision log joined with imported labels, at the prevalence observed.";
    for (const v of report.versions) {
      const tr = el("tr");
      const interval = v.f1_interval_95 ? ` [${fixed(v.f1_interval_95[0], 3)}, ` +
        `${fixed(v.f1_interval_95[1], 3)}]` : "";
      const delay = v.label_delay_hours_p90 === null ? "-" : `${fixed(v.label_delay_hours_p90, 1)} h`;
      for (const value of [v.model_version, String(v.rows_scored),
        `${v.labelled} (${fixed((v.labelled_share || 0) * 100, 0)} %)`, delay,
        fixed(v.precision, 4), fixed(v.recall, 4), fixed(v.f1, 4) + interval, fixed(v.pr_auc, 4)]) {
        tr.append(el("td", "", value));
      }
      if (v.note) tr.title = v.note;
      rows.append(tr);
      if (v.note) {
        const note = el("tr");
        const cell = el("td", "muted", v.note);
        cell.colSpan = 8;
        note.append(cell);
        rows.append(note);
      }
    }
  } catch (error) {
    $("live-error").textContent = error.message;
  }
}

// --- drift --------------------------------------------------------------------------------

async function loadDrift() {
  $("drift-error").textContent = "";
  try {
    const report = await call("GET", "/drift");
    const psi = Object.entries(report.psi).filter(([, v]) => v !== null);
    const minutes = Math.round(report.window_s / 60);
    $("drift-summary").textContent = {
      unmonitored: `Model ${report.model_version} carries no drift reference.`,
      collecting: `Collecting (${report.live_rows} of ${report.min_live_rows} live rows of the ` +
        `last ${minutes} minutes, all workers): on fewer rows PSI is sampling noise, so no ` +
        "level is shown yet.",
      measured: `PSI against ${report.reference_rows} training rows, over the ` +
        `${report.live_rows} live rows of the last ${minutes} minutes (all workers). Above ` +
        `${report.levels.watch}: worth a look; above ${report.levels.drift}: drift.`,
    }[report.status];
    psi.sort((a, b) => b[1] - a[1]);
    bars($("drift-bars"), psi.map(([name, value]) => ({
      label: name,
      value,
      text: value.toFixed(3),
      kind: value > report.levels.drift ? "up" : value > report.levels.watch ? "watch" : "ok",
    })), { signed: false, scale: Math.max(0.25, ...psi.map(([, v]) => v)) });
  } catch (error) {
    $("drift-error").textContent = error.message;
  }
}

// --- wiring -------------------------------------------------------------------------------

function showKeyStatus() {
  $("key-status").textContent = apiKey()
    ? "Key set for this tab (session storage); closing the tab forgets it."
    : "No key yet: one of the service's FRAUD_API_KEYS. `make run` prints it on its first " +
      "run and keeps it in .local/keys/api-keys.json; docker compose reads it from .env.";
}

function refreshAll() {
  if (!apiKey()) return;
  loadModel();
  loadLive();
  loadDrift();
}

async function start() {
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY_ITEM, $("api-key").value.trim());
    $("api-key").value = "";
    showKeyStatus();
    refreshAll();
  });
  $("forget-key").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_ITEM);
    showKeyStatus();
  });
  $("score-button").addEventListener("click", score);
  $("model-refresh").addEventListener("click", loadModel);
  $("drift-refresh").addEventListener("click", loadDrift);
  $("live-refresh").addEventListener("click", loadLive);
  examples = await (await fetch("examples.json")).json();
  const select = $("example");
  for (const [name, example] of Object.entries(examples)) {
    const option = el("option", "", example.title);
    option.value = name;
    select.append(option);
  }
  select.addEventListener("change", () => {
    $("body").value = JSON.stringify(examples[select.value].body, null, 1);
  });
  select.dispatchEvent(new Event("change"));
  showKeyStatus();
  refreshAll();
}

start();
