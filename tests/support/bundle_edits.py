"""Bundles changed the way an attacker who can write the bucket would: a manifest field, a file
replaced and vouched for, a model.npz array damaged, one case per check that must catch it."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import numpy as np

from ml.runtime.bundle import sha256_hex
from ml.runtime.layout import MANIFEST_FILE, MODEL_FILE


def with_manifest(files: dict[str, bytes], **changes: object) -> dict[str, bytes]:
    """The bundle with manifest fields replaced (its checksum no longer matches the pointer's)."""
    manifest = json.loads(files[MANIFEST_FILE]) | changes
    return {**files, MANIFEST_FILE: json.dumps(manifest).encode()}


def with_file(files: dict[str, bytes], name: str, data: bytes) -> dict[str, bytes]:
    """Replace one file and vouch for it in the manifest, as a writer with the means to
    recompute checksums would: what is left to catch it is the content check."""
    manifest = json.loads(files[MANIFEST_FILE])
    manifest["files"][name] = {"sha256": sha256_hex(data), "bytes": len(data)}
    return {**files, name: data, MANIFEST_FILE: json.dumps(manifest).encode()}


def npz_with(files: dict[str, bytes], **changes: Any) -> bytes:
    with np.load(io.BytesIO(files[MODEL_FILE]), allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    for name, change in changes.items():
        arrays[name] = change(arrays[name])
    arrays = {k: v for k, v in arrays.items() if v is not None}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _out_of_range(children: np.ndarray) -> np.ndarray:
    children = children.copy()
    children[3] = children.size
    return children


def _nan_threshold(threshold: np.ndarray) -> np.ndarray:
    threshold = threshold.copy()
    threshold[0] = np.nan
    return threshold


def _inner_node_as_end(children: np.ndarray) -> np.ndarray:
    children = children.copy()
    children[0:2] = 0  # the first root points to itself, but it is no leaf: its value is 0
    return children


def _uneven_cover(cover: np.ndarray) -> np.ndarray:
    cover = cover.copy()
    cover[0] += 1.0  # the first root now has one training row its children never saw
    return cover


MALFORMED_MODEL: dict[str, Callable[[dict[str, bytes]], bytes]] = {
    "truncated": lambda files: files[MODEL_FILE][: len(files[MODEL_FILE]) // 2],
    "not-a-zip": lambda files: b"\x80\x04 a pickle, maybe",
    "missing-array": lambda files: npz_with(files, value=lambda _: None),
    "wrong-dtype": lambda files: npz_with(files, feature=lambda a: a.astype(np.float64)),
    "wrong-shape": lambda files: npz_with(files, threshold=lambda a: a[:-1]),
    "child-out-of-range": lambda files: npz_with(files, children=_out_of_range),
    "nan-threshold": lambda files: npz_with(files, threshold=_nan_threshold),
    "feature-out-of-range": lambda files: npz_with(files, feature=lambda a: a + 31),
    "depth-too-large": lambda files: npz_with(files, depth=lambda _: np.int32(10_000)),
    "walk-not-ending-in-leaves": lambda files: npz_with(
        files, children=_inner_node_as_end, depth=lambda _: np.int32(0)
    ),
    "object-array": lambda files: npz_with(files, roots=lambda a: a.astype(object)),
    "cover-uneven": lambda files: npz_with(files, cover=_uneven_cover),
    "cover-not-positive": lambda files: npz_with(files, cover=lambda a: a * 0.0),
    "cover-wrong-shape": lambda files: npz_with(files, cover=lambda a: a[:-1]),
}
MALFORMED_REASONS = {
    "truncated": "cannot be read",
    "not-a-zip": "cannot be read",
    "missing-array": "no array 'value'",
    "wrong-dtype": "feature is float64",
    "wrong-shape": "threshold has",
    "child-out-of-range": "child indices outside",
    "nan-threshold": "NaN thresholds",
    "feature-out-of-range": "feature indices outside",
    "depth-too-large": "depth 10000 outside",
    "walk-not-ending-in-leaves": "not reached a leaf",
    "object-array": "cannot be read",
    "cover-uneven": "children do not share their parent's cover",
    "cover-not-positive": "cover counts must be finite and > 0",
    "cover-wrong-shape": "cover has",
}
