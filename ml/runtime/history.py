"""The promotion log: one create-only record (a `Pointer`) per change of production.json.

One reader for everyone (`fraudctl history`, the API's /model/history): anyone who can write
the bucket can write a record, so one that does not parse is counted, not shown, and does not
hide the others.
"""

from __future__ import annotations

from dataclasses import dataclass

from ml.runtime.layout import HISTORY_PREFIX
from ml.runtime.store import (
    ArtifactReader,
    ArtifactStore,
    InvalidPointer,
    Pointer,
    StoreError,
    StoreUnavailable,
)


@dataclass(frozen=True)
class PromotionLog:
    entries: list[Pointer]  # newest first
    unreadable: int  # records that are not valid pointers, or went missing since listed


def record_history(store: ArtifactStore, pointer: Pointer) -> str:
    """Append the pointer change to the promotion log (one create-only object per change)."""
    stamp = pointer.promoted_at.replace(":", "").replace("-", "")
    key = f"{HISTORY_PREFIX}{stamp}-{pointer.action}-{pointer.version}.json"
    store.put_if_absent(key, pointer.to_json())
    return key


def read_history(store: ArtifactReader, limit: int | None = None) -> PromotionLog:
    """The log's latest `limit` records (all by default), newest first. Keys sort by time: a
    record's key starts with its promotion time."""
    keys = sorted(store.list_keys(HISTORY_PREFIX))
    if limit is not None:
        keys = keys[-limit:] if limit > 0 else []
    entries, unreadable = [], 0
    for key in reversed(keys):
        try:
            entries.append(Pointer.from_json(store.get(key)))
        except StoreUnavailable:
            raise
        except (InvalidPointer, StoreError):  # not a record, or gone since listed
            unreadable += 1
    return PromotionLog(entries, unreadable)
