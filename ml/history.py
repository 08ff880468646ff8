"""What a store holds: every version with its training metrics, which one is live, and the
promotion log, newest first as the API's /model/history lists it. `fraudctl history` prints it;
it reads the store and changes nothing."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from ml.runtime.history import read_history
from ml.runtime.layout import MANIFEST_FILE, version_key
from ml.runtime.store import ArtifactStore, Pointer
from ml.runtime.versions import list_versions


@dataclass(frozen=True)
class VersionSummary:
    version: str
    live: bool
    model_family: str
    created_at: str
    threshold: float
    training_test_f1: float
    training_test_pr_auc: float


@dataclass(frozen=True)
class StoreHistory:
    store: str
    live: str | None
    versions: list[VersionSummary]
    log: list[Pointer]  # newest first
    unreadable: int  # log records that are not valid records: counted, not shown

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def store_history(store: ArtifactStore) -> StoreHistory:
    live = store.current_pointer().pointer
    log = read_history(store)
    versions = []
    for version in list_versions(store):
        # Read as plain JSON, not through Manifest: history describes every version, those the
        # service would refuse (format 1, waiting for `fraudctl migrate`) included.
        manifest = json.loads(store.get(version_key(version, MANIFEST_FILE)))
        test = manifest["metrics"]["test"]
        versions.append(
            VersionSummary(
                version=version,
                live=live is not None and live.version == version,
                model_family=manifest["model_family"],
                created_at=manifest["created_at"],
                threshold=manifest["threshold"],
                training_test_f1=test["f1"],
                training_test_pr_auc=test["pr_auc"],
            )
        )
    return StoreHistory(
        store=store.uri,
        live=live.version if live else None,
        versions=versions,
        log=log.entries,
        unreadable=log.unreadable,
    )
