"""The promotion report: report.json, report.md and pr_curve.png, side by side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ml.promote import Decision, Evaluated, PromotionResult


def rows(prevalence: float) -> tuple[tuple[str, str], ...]:
    at = f"at {prevalence:.3%}"
    return (
        (f"F1 {at}", "f1"),
        (f"Precision {at}", "precision"),
        ("Recall", "recall"),
        (f"PR-AUC {at}", "pr_auc"),
        ("ROC-AUC", "roc_auc"),
        ("F1 on the sample as it is", "sample_f1"),
        ("Precision on the sample", "sample_precision"),
        ("PR-AUC on the sample", "sample_pr_auc"),
        ("Threshold", "threshold"),
    )


def write_report(directory: Path, result: PromotionResult) -> dict[str, Path]:
    decision = result.decision
    directory.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": directory / "report.json",
        "markdown": directory / "report.md",
        "pr_curve": directory / "pr_curve.png",
    }
    paths["json"].write_text(json.dumps(decision.to_dict(), indent=2) + "\n")
    paths["markdown"].write_text(_markdown(decision))
    _plot(paths["pr_curve"], result.candidate, result.production, result.labels)
    return paths


def _overlap(overlap: list[dict[str, Any]]) -> str:
    return ", ".join(
        f"{o['version']}: {'unknown' if o['rows'] is None else o['rows']}" for o in overlap
    )


def _cell(metrics: dict[str, Any] | None, key: str) -> str:
    return "n/a" if metrics is None else f"{metrics[key]:.4f}"


def _cm(metrics: dict[str, Any] | None) -> str:
    if metrics is None:
        return "n/a"
    cm = metrics["confusion_matrix"]
    return f"TN {cm['tn']} / FP {cm['fp']} / FN {cm['fn']} / TP {cm['tp']}"


def _markdown(decision: Decision) -> str:
    cand = decision.candidate["metrics"]
    prod = decision.production["metrics"] if decision.production else None
    prod_version = decision.production["version"] if decision.production else "none"
    outcome = (
        "PROMOTED"
        if decision.promoted
        else "WOULD PROMOTE (dry run)"
        if decision.promote and decision.dry_run
        else "KEPT PRODUCTION"
    )
    data = decision.data
    lines = [
        f"# Promotion report: {outcome}",
        "",
        f"- Decision: **{decision.action}**: {decision.reason}",
        f"- Candidate: `{decision.candidate['version']}` ({decision.candidate['model_family']})",
        f"- Production: `{prod_version}`",
        f"- Store: `{decision.store}`; decided at {decision.decided_at}",
        f"- Evaluation data: `{data['path']}`, sha256 `{data['sha256']}`, {data['rows']} rows, "
        f"{data['frauds']} frauds (prevalence {data['prevalence']:.3%})",
        f"- Metrics are weighted to the configured prevalence, {decision.prevalence:.3%}, "
        "first: each legit row counts as many as production's class balance needs; the "
        "sample's own figures follow",
        f"- Rows a model trained on: {_overlap(decision.overlap)}"
        + (" (--allow-overlap)" if decision.allow_overlap else ""),
        "",
        "| metric | candidate | production |",
        "| --- | --- | --- |",
    ]
    lines += [
        f"| {name} | {_cell(cand, key)} | {_cell(prod, key)} |"
        for name, key in rows(decision.prevalence)
    ]
    lines.append(f"| Confusion matrix | {_cm(cand)} | {_cm(prod)} |")
    lines += ["", "![precision-recall curves](pr_curve.png)", ""]
    if decision.notify:
        lines += ["## Notified services", ""]
        lines += [
            f"- {n['url']}: {'ok' if n['ok'] else 'FAILED: ' + n['error']}" for n in decision.notify
        ]
        lines.append("")
    return "\n".join(lines)


def _plot(
    path: Path, candidate: Evaluated, production: Evaluated | None, labels: np.ndarray
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve

    figure, (full, zoom) = plt.subplots(1, 2, figsize=(12, 5.5), dpi=110)
    runs = [("candidate", candidate, "tab:blue")]
    if production is not None:
        runs.append(("production", production, "tab:orange"))
    for axes in (full, zoom):
        for name, run, colour in runs:
            precision, recall, _ = precision_recall_curve(labels, run.scores)
            m = run.metrics
            axes.plot(
                recall,
                precision,
                color=colour,
                label=f"{name} {run.bundle.version} (PR-AUC {m['pr_auc']:.3f})",
            )
            axes.scatter(
                [m["recall"]],
                [m["precision"]],
                color=colour,
                s=60,
                zorder=3,
                edgecolor="black",
                label=f"{name} threshold {m['threshold']:.3f}: F1 {m['f1']:.3f}",
            )
        axes.set_xlabel("recall")
        axes.set_ylabel("precision")
        axes.grid(alpha=0.3)
    full.set_xlim(0.0, 1.02)
    full.set_ylim(0.0, 1.02)
    prevalence = float(labels.mean())
    full.set_title(f"Precision-recall on {labels.size} rows (prevalence {prevalence:.2%})")
    full.legend(loc="lower left", fontsize=8)
    # The operating points usually sit in the top-right corner: show it up close.
    low_recall = min(run.metrics["recall"] for _, run, _ in runs)
    low_precision = min(run.metrics["precision"] for _, run, _ in runs)
    zoom.set_xlim(max(0.0, low_recall - 0.15), 1.01)
    zoom.set_ylim(max(0.0, low_precision - 0.25), 1.01)
    zoom.set_title("Around the operating thresholds")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
