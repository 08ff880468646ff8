"""The jobs behind `fraudctl`, as library functions: train a candidate, promote it (with its
report and notifications), or both. The CLI parses arguments and prints; these do the work."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ml.build import write_bundle
from ml.choices import DEFAULT_PREVALENCE
from ml.data import load_dataset
from ml.families import DEFAULT_FAMILY
from ml.promote import PromotionResult, promote
from ml.runtime.bundle import ModelBundle, load_bundle
from ml.runtime.store import ArtifactStore
from ml.train import train_bundle

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class PromotionOptions:
    """How a candidate is promoted and who hears of it."""

    min_delta: float = 0.0
    confidence: float = 0.9
    force: bool = False
    dry_run: bool = False
    notify_urls: tuple[str, ...] = ()
    admin_key: str = ""
    report_dir: Path | None = None
    prevalence: float = DEFAULT_PREVALENCE
    allow_overlap: bool = False
    max_prauc_drop: float | None = None


@dataclass(frozen=True)
class TrainingOptions:
    """How a candidate is trained: model family, seed, and the prevalence its threshold and
    metrics are tuned for, with the threshold's objective."""

    model: str = DEFAULT_FAMILY
    seed: int = 0
    prevalence: float = DEFAULT_PREVALENCE
    objective: str = "f1"


def train_candidate(
    data: Path,
    out: Path,
    options: TrainingOptions = TrainingOptions(),
    *,
    progress: Progress = _quiet,
) -> ModelBundle:
    """Train on `data`, check the bundle as the service would, and write it to `out`."""
    progress(f"reading {data}")
    dataset = load_dataset(data)
    files = train_bundle(
        dataset,
        model_name=options.model,
        seed=options.seed,
        prevalence=options.prevalence,
        objective=options.objective,
        progress=progress,
    )
    bundle = load_bundle(files)  # the candidate must pass the same checks the service applies
    write_bundle(out, files)
    progress(f"wrote candidate bundle {bundle.version} to {out}")
    return bundle


def promote_candidate(
    candidate: Path,
    data: Path,
    store: ArtifactStore,
    options: PromotionOptions,
    *,
    progress: Progress = _quiet,
) -> PromotionResult:
    """Compare-and-promote, then notify the services and write the report."""
    from ml.report import write_report

    result = promote(
        candidate,
        data,
        store,
        min_delta=options.min_delta,
        confidence=options.confidence,
        force=options.force,
        dry_run=options.dry_run,
        prevalence=options.prevalence,
        allow_overlap=options.allow_overlap,
        max_prauc_drop=options.max_prauc_drop,
    )
    decision = result.decision
    if decision.promoted:
        progress(f"PROMOTED {decision.candidate['version']} ({decision.action}): {decision.reason}")
        decision.notify.extend(notify_services(options.notify_urls, options.admin_key, progress))
    elif decision.promote:
        progress(f"DRY RUN: would promote {decision.candidate['version']}: {decision.reason}")
    else:
        progress(f"KEPT production: {decision.reason}")
    if options.report_dir is not None:
        paths = write_report(options.report_dir, result)
        progress(f"report: {paths['markdown']}, {paths['json']}, {paths['pr_curve']}")
    return result


def notify_services(
    urls: tuple[str, ...], admin_key: str, progress: Progress = _quiet
) -> list[dict[str, Any]]:
    """POST /reload to each service; say how each went. Never raises: services also poll."""
    from ml.notify import notify_reload

    outcomes = []
    for url in urls:
        notified = notify_reload(url, admin_key)
        outcomes.append(notified)
        if notified["ok"]:
            progress(f"notified {notified['url']}: {notified['response']}")
        else:
            progress(
                f"WARNING: notify {notified['url']} failed after {notified['attempts']} "
                f"attempt(s): {notified['error']} (services will still pick the model up "
                "when they next poll)"
            )
    return outcomes


def train_and_promote(
    train_data: Path,
    eval_data: Path,
    store: ArtifactStore,
    options: PromotionOptions,
    training: TrainingOptions = TrainingOptions(),
    *,
    work_dir: Path | None = None,
    progress: Progress = _quiet,
) -> PromotionResult:
    """Train a candidate, then compare-and-promote it on other rows: `retrain` and `run-local`.
    The candidate goes to `work_dir/candidate` (kept), or to a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="fraud-candidate-") as tmp:
        candidate = (work_dir or Path(tmp)) / "candidate"
        train_candidate(train_data, candidate, training, progress=progress)
        return promote_candidate(candidate, eval_data, store, options, progress=progress)
