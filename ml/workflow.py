"""The jobs behind `fraudctl`, as library functions: train a candidate, promote it (with its
report and notifications), or both. The CLI parses arguments and prints; these do the work."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ml.build import write_bundle
from ml.data import load_dataset
from ml.promote import PromotionResult, promote
from ml.runtime.bundle import ModelBundle, load_bundle
from ml.runtime.store import ArtifactStore
from ml.train import DEFAULT_MODEL, train_bundle

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class PromotionOptions:
    """How a candidate is promoted and who hears of it."""

    min_delta: float = 0.0
    force: bool = False
    dry_run: bool = False
    notify_urls: tuple[str, ...] = ()
    admin_key: str = ""
    report_dir: Path | None = None


def train_candidate(
    data: Path,
    out: Path,
    *,
    model: str = DEFAULT_MODEL,
    seed: int = 0,
    progress: Progress = _quiet,
) -> ModelBundle:
    """Train on `data`, check the bundle as the service would, and write it to `out`."""
    progress(f"reading {data}")
    dataset = load_dataset(data)
    files = train_bundle(dataset, model_name=model, seed=seed, progress=progress)
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
    from ml.notify import notify_reload
    from ml.report import write_report

    result = promote(
        candidate,
        data,
        store,
        min_delta=options.min_delta,
        force=options.force,
        dry_run=options.dry_run,
    )
    decision = result.decision
    if decision.promoted:
        progress(f"PROMOTED {decision.candidate['version']} ({decision.action}): {decision.reason}")
        for url in options.notify_urls:
            notified = notify_reload(url, options.admin_key)
            decision.notify.append(notified)
            if notified["ok"]:
                progress(f"notified {notified['url']}: {notified['response']}")
            else:
                progress(
                    f"WARNING: notify {notified['url']} failed after {notified['attempts']} "
                    f"attempt(s): {notified['error']} (services will still pick the model up "
                    "when they next poll)"
                )
    elif decision.promote:
        progress(f"DRY RUN: would promote {decision.candidate['version']}: {decision.reason}")
    else:
        progress(f"KEPT production: {decision.reason}")
    if options.report_dir is not None:
        paths = write_report(options.report_dir, result)
        progress(f"report: {paths['markdown']}, {paths['json']}, {paths['pr_curve']}")
    return result


def train_and_promote(
    train_data: Path,
    eval_data: Path,
    store: ArtifactStore,
    options: PromotionOptions,
    *,
    model: str = DEFAULT_MODEL,
    seed: int = 0,
    work_dir: Path | None = None,
    progress: Progress = _quiet,
) -> PromotionResult:
    """Train a candidate, then compare-and-promote it: `retrain` and `run-local` in one call.
    The candidate goes to `work_dir/candidate` (kept), or to a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="fraud-candidate-") as tmp:
        candidate = (work_dir or Path(tmp)) / "candidate"
        train_candidate(train_data, candidate, model=model, seed=seed, progress=progress)
        return promote_candidate(candidate, eval_data, store, options, progress=progress)
