"""A live-quality report as `fraudctl evaluate --live` makes one, for the service's tests."""

from __future__ import annotations

from ml.live import LiveReport, VersionQuality


def live_report(generated_at: str, f1: float) -> LiveReport:
    version = VersionQuality(
        model_version="v1",
        rows_scored=5000,
        labelled=4000,
        labelled_share=0.8,
        frauds=60,
        prevalence_observed=0.015,
        label_delay_hours_p50=30.0,
        label_delay_hours_p90=200.0,
        confusion={"tp": 45, "fp": 5, "fn": 15, "tn": 3935},
        precision=0.9,
        recall=0.75,
        f1=f1,
        pr_auc=0.8,
        intervals_95={"f1": [0.7, 0.88]},
    )
    return LiveReport(generated_at, "2026-11-01T00:00:00+00:00", 0.00172, 5000, 4000, [version])
