"""The live-quality summary in the store: written by `fraudctl evaluate --live`, read by the
service for the console's "Live quality" panel. The service never runs the join; it reads the
newest summary, and takes from it only the fields below, each checked for its type: anyone
who can write the bucket can write a summary.
"""

from __future__ import annotations

from typing import Any

from ml.runtime.store import ArtifactReader, ObjectNotFound
from ml.runtime.untrusted_json import NotJsonObject, parse_object

LIVE_QUALITY_PREFIX = "reports/live-quality/"
SUMMARY_MAX_BYTES = 256 * 1024
MAX_VERSIONS = 20
_NUMBERS = (
    "labelled_share",
    "prevalence_observed",
    "label_delay_hours_p50",
    "label_delay_hours_p90",
    "precision",
    "recall",
    "f1",
    "pr_auc",
    "f1_at_prevalence",
)
_COUNTS = ("rows_scored", "labelled", "frauds")


class UnreadableSummary(ValueError):
    pass


def summary_key(generated_at: str) -> str:
    """`reports/live-quality/20261203T171500Z.json`: keys sort by time."""
    compact = generated_at.replace("-", "").replace(":", "").split("+")[0]
    return f"{LIVE_QUALITY_PREFIX}{compact}Z.json"


def read_latest_summary(store: ArtifactReader) -> dict[str, Any] | None:
    """The newest summary's checked fields; None when there is none yet."""
    keys = [k for k in store.list_keys(LIVE_QUALITY_PREFIX) if k.endswith(".json")]
    if not keys:
        return None
    try:
        raw = parse_object(store.get(max(keys), max_bytes=SUMMARY_MAX_BYTES))
        return checked(raw)
    except ObjectNotFound:
        return None
    except (NotJsonObject, UnreadableSummary) as exc:
        raise UnreadableSummary(f"{store.uri}/{max(keys)}: {exc}") from None


def checked(raw: dict[str, Any]) -> dict[str, Any]:
    versions = raw.get("versions")
    if not isinstance(versions, list) or len(versions) > MAX_VERSIONS:
        raise UnreadableSummary(f"versions must be a list of at most {MAX_VERSIONS}")
    return {
        "generated_at": _text(raw.get("generated_at"), "generated_at"),
        "prevalence": _number(raw.get("prevalence"), "prevalence"),
        "versions": [_version(v) for v in versions],
    }


def _version(raw: object) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise UnreadableSummary("a version entry is not an object")
    entry: dict[str, Any] = {"model_version": _text(raw.get("model_version"), "model_version")}
    entry |= {name: _number(raw.get(name), name, optional=True) for name in _NUMBERS}
    entry |= {name: int(_number(raw.get(name), name) or 0) for name in _COUNTS}
    interval = (
        raw.get("intervals_95", {}).get("f1") if isinstance(raw.get("intervals_95"), dict) else None
    )
    entry["f1_interval_95"] = (
        [_number(x, "f1 interval") for x in interval]
        if isinstance(interval, list) and len(interval) == 2
        else None
    )
    entry["note"] = _text(raw.get("note", ""), "note", limit=500)
    return entry


def _text(value: object, name: str, limit: int = 100) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise UnreadableSummary(f"{name} must be text of at most {limit} characters")
    return value


def _number(value: object, name: str, *, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UnreadableSummary(f"{name} must be a number, got {type(value).__name__}")
    return float(value)
