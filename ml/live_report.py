"""The live-quality report's outputs: a table for stdout, live-quality.json and
live-quality.png in a directory, the summary the console reads from the store, and EMF lines.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ml.live import LiveReport, VersionQuality
from ml.runtime.live_summary import LIVE_QUALITY_PREFIX, summary_key
from ml.runtime.store import ArtifactStore

EMF_NAMESPACE = "FraudScoring"


def _metric(value: float | None, interval: list[float] | None = None) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" + (f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "")


def _hours(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} h"


def table_rows(report: LiveReport) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for v in report.versions:
        c = v.confusion
        rows.append(
            (
                v.model_version,
                str(v.rows_scored),
                f"{v.labelled} ({v.labelled_share:.0%})",
                f"{_hours(v.label_delay_hours_p50)} / {_hours(v.label_delay_hours_p90)}",
                f"{c['tp']}/{c['fp']}/{c['fn']}/{c['tn']}",
                _metric(v.precision, v.intervals_95.get("precision")),
                _metric(v.recall, v.intervals_95.get("recall")),
                _metric(v.f1, v.intervals_95.get("f1")),
                _metric(v.pr_auc),
            )
        )
    return rows


TABLE_HEADER = (
    "version",
    "scored",
    "labelled",
    "label delay p50 / p90",
    "TP/FP/FN/TN",
    "precision [95 %]",
    "recall [95 %]",
    "F1 [95 %]",
    "PR-AUC",
)


def write_files(directory: Path, report: LiveReport) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"json": directory / "live-quality.json", "plot": directory / "live-quality.png"}
    paths["json"].write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    _plot(paths["plot"], report.versions)
    return paths


def _plot(path: Path, versions: list[VersionQuality]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [v for v in versions if v.f1 is not None]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    names = ("precision", "recall", "f1")
    width = 0.8 / max(1, len(measured))
    for i, v in enumerate(measured):
        values = [getattr(v, n) for n in names]
        # An interval need not contain the point (63/63 is 1.0; its interval [0.96, 0.9998]).
        lows = [max(0.0, values[k] - v.intervals_95[n][0]) for k, n in enumerate(names)]
        highs = [max(0.0, v.intervals_95[n][1] - values[k]) for k, n in enumerate(names)]
        xs = [k + i * width for k in range(len(names))]
        ax.bar(xs, values, width, yerr=[lows, highs], capsize=3, label=v.model_version)
    ax.set_xticks([k + 0.4 - width / 2 for k in range(len(names))], ["precision", "recall", "F1"])
    ax.set_ylim(0, 1)
    ax.set_title("Live quality by model version (95 % intervals)")
    if measured:
        ax.legend(fontsize="small")
    else:
        ax.text(0.5, 0.5, "too few labels for a metric yet", ha="center", transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def publish(store: ArtifactStore, report: LiveReport) -> str:
    """The summary for the console (`GET /model/live-quality`), create-only, one per run."""
    key = summary_key(report.generated_at)
    store.put_if_absent(key, json.dumps(report.to_dict(), sort_keys=True).encode())
    assert key.startswith(LIVE_QUALITY_PREFIX)
    return key


def emf_documents(report: LiveReport, service: str, now_ms: int) -> list[dict[str, Any]]:
    """One EMF document per measured version: CloudWatch metrics from the job's stdout."""
    documents = []
    for v in report.versions:
        values: dict[str, float] = {"LabelledShare": v.labelled_share}
        for name, value in (
            ("LiveF1", v.f1),
            ("LivePrecision", v.precision),
            ("LiveRecall", v.recall),
        ):
            if value is not None:
                values[name] = value
        if v.label_delay_hours_p90 is not None:
            values["LabelDelayP90Hours"] = v.label_delay_hours_p90
        documents.append(
            {
                "_aws": {
                    "Timestamp": now_ms,
                    "CloudWatchMetrics": [
                        {
                            "Namespace": EMF_NAMESPACE,
                            "Dimensions": [["Service"], ["Service", "ModelVersion"]],
                            "Metrics": [{"Name": n, "Unit": "None"} for n in values],
                        }
                    ],
                },
                "Service": service,
                "ModelVersion": v.model_version,
                **values,
            }
        )
    return documents
