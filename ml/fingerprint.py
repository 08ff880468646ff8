"""Which rows a model was trained on, as a compact fingerprint kept in its manifest.

Each row's 30 features (float64, -0.0 folded into 0.0) are hashed to 64 bits (BLAKE2b); the
sorted distinct hashes, base64-encoded, are the fingerprint: 8 bytes a row, ~100 KB for the
committed sample's training rows. Labels are left out on purpose: the same transaction with
another label is still a row the model has seen. Two distinct rows share a hash with
probability ~n^2 / 2^65, about 1e-9 for the full dataset.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import numpy as np

ALGORITHM = "blake2b-64 of the 30 float64 features, sorted, base64"


def row_hashes(X: np.ndarray) -> np.ndarray:
    rows = np.ascontiguousarray(X, dtype=np.float64) + 0.0  # -0.0 + 0.0 is 0.0
    digests = b"".join(hashlib.blake2b(row.tobytes(), digest_size=8).digest() for row in rows)
    return np.frombuffer(digests, dtype="<u8")


def fingerprint(X: np.ndarray) -> dict[str, Any]:
    hashes = np.unique(row_hashes(X))
    return {
        "algorithm": ALGORITHM,
        "rows": int(hashes.size),
        "hashes": base64.b64encode(hashes.astype("<u8").tobytes()).decode("ascii"),
    }


def fingerprint_hashes(fingerprint: dict[str, Any]) -> np.ndarray:
    if fingerprint.get("algorithm") != ALGORITHM:
        raise ValueError(f"unknown row fingerprint algorithm {fingerprint.get('algorithm')!r}")
    return np.frombuffer(base64.b64decode(fingerprint["hashes"]), dtype="<u8")


def overlapping_rows(X: np.ndarray, fingerprint: dict[str, Any]) -> int:
    """How many rows of X are among the fingerprinted rows."""
    return count_fingerprinted(row_hashes(X), fingerprint)


def count_fingerprinted(hashes: np.ndarray, fingerprint: dict[str, Any]) -> int:
    """How many of these row hashes the fingerprint holds: hash the rows once, check them
    against as many models' fingerprints as there are."""
    return int(np.isin(hashes, fingerprint_hashes(fingerprint)).sum())
