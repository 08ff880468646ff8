"""Options several sub-commands share, declared once."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ml.families import DEFAULT_FAMILY, FAMILIES

if TYPE_CHECKING:
    from ml.runtime.store import ArtifactStore
    from ml.settings import TrainingSettings


def add_prevalence(parser: argparse.ArgumentParser, settings: TrainingSettings) -> None:
    parser.add_argument(
        "--prevalence",
        type=float,
        default=settings.prevalence,
        help="the deployment's fraud rate; metrics are weighted to it first "
        "(FRAUD_PREVALENCE; default %(default)g, production's 0.172 %%)",
    )


def add_training(parser: argparse.ArgumentParser, settings: TrainingSettings) -> None:
    parser.add_argument(
        "--model", choices=FAMILIES, default=DEFAULT_FAMILY, help="model family (ml/families.py)"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=settings.seed,
        help="random seed (FRAUD_SEED)",
    )
    add_prevalence(parser, settings)
    parser.add_argument(
        "--objective",
        default="f1",
        help="what the threshold optimises on out-of-fold scores at --prevalence: 'f1' "
        "(default) or 'precision=0.9' (the most recall at that precision)",
    )


def add_gate(parser: argparse.ArgumentParser, settings: TrainingSettings) -> None:
    add_prevalence(parser, settings)
    parser.add_argument(
        "--allow-overlap",
        action="store_true",
        help="evaluate even on rows a model was trained on (recorded in history)",
    )


def add_confidence(parser: argparse.ArgumentParser, settings: TrainingSettings) -> None:
    parser.add_argument(
        "--confidence",
        type=float,
        default=settings.confidence,
        help="promote only if the candidate beats production by --min-delta in at least this "
        "share of 2,000 paired bootstrap resamples of the evaluation rows (FRAUD_CONFIDENCE)",
    )


def add_prauc_gate(parser: argparse.ArgumentParser, settings: TrainingSettings) -> None:
    parser.add_argument(
        "--max-prauc-drop",
        type=float,
        default=settings.max_prauc_drop,
        help="also keep production when the candidate's PR-AUC is lower by more than this "
        "(FRAUD_MAX_PRAUC_DROP; default: no PR-AUC condition)",
    )


def add_store(parser: argparse.ArgumentParser, settings: TrainingSettings) -> None:
    """--store, required unless FRAUD_STORE_URI names one or `make run`'s .local/store exists."""
    parser.add_argument(
        "--store",
        default=settings.store_uri,
        required=settings.store_uri is None,
        help="s3://bucket/prefix or a directory (FRAUD_STORE_URI; after `make run`, its "
        ".local/store)",
    )


def add_create_store(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--create-store",
        action="store_true",
        help="make the store's directory if it does not exist (a bucket must exist already); "
        "without it, a missing store is an error, so a typo cannot start a new one",
    )


def existing_store(uri: str, *, create: bool = False) -> ArtifactStore:
    """The store at `uri`, which must exist unless `create` (a local directory is made)."""
    from ml.runtime.local_store import LocalStore
    from ml.runtime.store import StoreError
    from ml.runtime.store_uri import open_store

    store = open_store(uri)
    if store.exists():
        return store
    if create and isinstance(store, LocalStore):
        store.root.mkdir(parents=True)
        return store
    hint = "pass --create-store to make it" if isinstance(store, LocalStore) else "create it"
    raise StoreError(f"store {store.uri} does not exist: check the location, or {hint}")
