"""Model kind "tree_ensemble": a binary histogram-gradient-boosting model as flat arrays.

Every tree walks one level per step, all trees and rows at once: `children[2 * node + go_right]`
holds both children and leaves point to themselves, so a fixed number of steps (`depth`)
reaches every leaf. A missing value (NaN) goes where scikit-learn sends it, per node
(`missing_right`). Its explainer is exact TreeSHAP (`ml.runtime.kinds.treeshap`).

Loading validates everything a hostile file could get wrong (keys, dtypes, shapes, indices out
of range, NaN thresholds, a walk that would not end in leaves) and raises `SpecError` saying
what, before any row is scored. The bundle then proves equivalence with scikit-learn's
training-time probabilities on its canary rows (1e-9).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ml.runtime.features import SpecError
from ml.runtime.kinds.base import N_INPUTS, npz_array, sigmoid
from ml.runtime.kinds.treeshap import TreeShap

MAX_DEPTH = 64  # a deeper walk is refused: the work per row is bounded by depth
MAX_NODES = 5_000_000
# Rows walked together. Each step holds rows x trees node indices: 100,000 rows of the make run
# model (120 trees) built 96 MB of them per step, and scored at 178k rows/s against 339k in
# chunks of 1,024 (256: 315k, 4,096: 333k, 8,192: 299k; raw log-odds, one thread, 2 vCPU).
# A row's arithmetic does not depend on its chunk: the results are bit-identical.
WALK_CHUNK_ROWS = 1024


@dataclass(frozen=True, eq=False)
class TreeEnsemble:
    kind: ClassVar[str] = "tree_ensemble"
    handles_missing: ClassVar[bool] = True

    feature: np.ndarray  # intp (n,): the input each node splits on (0 for leaves)
    threshold: np.ndarray  # float64 (n,): go right when input > threshold (+inf for leaves)
    missing_right: np.ndarray  # bool (n,): where a NaN input goes
    children: np.ndarray  # intp (2n,): left at 2i, right at 2i+1; a leaf points to itself
    value: np.ndarray  # float64 (n,): leaf values (0 for inner nodes)
    roots: np.ndarray  # intp (trees,)
    depth: int
    baseline: float
    # float64 (n,): training rows that reached each node; what TreeSHAP weighs paths by. Absent
    # in bundles made before explanations: they score, but cannot be explained.
    cover: np.ndarray | None = None

    def raw(self, features: np.ndarray) -> np.ndarray:
        """Log-odds for rows of model inputs, walked `WALK_CHUNK_ROWS` rows at a time."""
        X = np.ascontiguousarray(features, dtype=np.float64)
        if X.shape[0] <= WALK_CHUNK_ROWS:
            return self._walk(X)
        raw = np.empty(X.shape[0], dtype=np.float64)
        for start in range(0, X.shape[0], WALK_CHUNK_ROWS):
            raw[start : start + WALK_CHUNK_ROWS] = self._walk(X[start : start + WALK_CHUNK_ROWS])
        return raw

    def _walk(self, X: np.ndarray) -> np.ndarray:
        n, width = X.shape
        flat = X.ravel()
        if n == 1:
            # One row walks on 1-D indices: the (1, trees) broadcasting cost the make run
            # model 36 us a walk, against 20 (a /predict at low load scores one row).
            node, row_start = self.roots, None
        else:
            row_start = (np.arange(n, dtype=np.intp) * width)[:, None]
            node = np.broadcast_to(self.roots, (n, self.roots.size))
        missing = bool(np.isnan(X).any())
        for _ in range(self.depth):
            at = self.feature[node]
            x = flat[at if row_start is None else row_start + at]
            go_right = x > self.threshold[node]
            if missing:  # NaN > t is False: send it where scikit-learn does (TreeShap._chunk too)
                go_right |= np.isnan(x) & self.missing_right[node]
            node = self.children[2 * node + go_right]
        raw: np.ndarray = self.baseline + self.value[node].sum(axis=-1, keepdims=n == 1)
        return raw

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        return sigmoid(self.raw(features))

    def to_npz(self) -> bytes:
        buffer = io.BytesIO()
        arrays: dict[str, np.ndarray] = {
            "feature": self.feature.astype(np.int32),
            "threshold": self.threshold.astype(np.float64),
            "missing_right": self.missing_right.astype(np.bool_),
            "children": self.children.astype(np.int32),
            "value": self.value.astype(np.float64),
            "roots": self.roots.astype(np.int32),
            "depth": np.int32(self.depth),  # type: ignore[dict-item]
            "baseline": np.float64(self.baseline),  # type: ignore[dict-item]
        }
        if self.cover is not None:
            arrays["cover"] = self.cover.astype(np.float64)
        np.savez(buffer, **arrays)  # type: ignore[arg-type]
        return buffer.getvalue()

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> TreeEnsemble:
        feature = npz_array(arrays, "feature", np.int32, 1)
        n = feature.size
        if not 0 < n <= MAX_NODES:
            raise SpecError(f"model.npz: {n} nodes (expected 1..{MAX_NODES})")
        threshold = npz_array(arrays, "threshold", np.float64, 1, n)
        missing_right = npz_array(arrays, "missing_right", np.bool_, 1, n)
        children = npz_array(arrays, "children", np.int32, 1, 2 * n)
        value = npz_array(arrays, "value", np.float64, 1, n)
        roots = npz_array(arrays, "roots", np.int32, 1)
        depth = int(npz_array(arrays, "depth", np.int32, 0))
        baseline = float(npz_array(arrays, "baseline", np.float64, 0))
        if np.isnan(threshold).any():
            raise SpecError("model.npz: NaN thresholds")
        if not (np.isfinite(value).all() and np.isfinite(baseline)):
            raise SpecError("model.npz: leaf values and baseline must be finite")
        if ((feature < 0) | (feature >= N_INPUTS)).any():
            raise SpecError(f"model.npz: feature indices outside 0..{N_INPUTS - 1}")
        if ((children < 0) | (children >= n)).any():
            raise SpecError(f"model.npz: child indices outside 0..{n - 1}")
        if roots.size == 0 or ((roots < 0) | (roots >= n)).any():
            raise SpecError(f"model.npz: root indices outside 0..{n - 1}")
        if not 0 <= depth <= MAX_DEPTH:
            raise SpecError(f"model.npz: depth {depth} outside 0..{MAX_DEPTH}")
        cover = npz_array(arrays, "cover", np.float64, 1, n) if "cover" in arrays else None
        model = cls(
            feature=feature.astype(np.intp),
            threshold=threshold,
            missing_right=missing_right,
            children=children.astype(np.intp),
            value=value,
            roots=roots.astype(np.intp),
            depth=depth,
            baseline=baseline,
            cover=cover,
        )
        if cover is not None:
            model._check_cover()
        model._check_walk_ends_in_leaves()
        return model

    def explainer(self) -> TreeShap:
        return TreeShap(self)

    def is_leaf(self) -> np.ndarray:
        """bool (n,): the nodes whose children are themselves."""
        own = np.arange(self.feature.size)
        is_leaf: np.ndarray = (self.children[0::2] == own) & (self.children[1::2] == own)
        return is_leaf

    def nodes_after_walk(self) -> np.ndarray:
        """Where walks from every root stand after `depth` steps, sorted: on a loaded model,
        every leaf a row can reach."""
        frontier = np.unique(self.roots)
        for _ in range(self.depth):
            frontier = np.unique(
                np.concatenate([self.children[2 * frontier], self.children[2 * frontier + 1]])
            )
        return frontier

    def _check_walk_ends_in_leaves(self) -> None:
        """After `depth` steps from any root, every path must sit on a leaf: otherwise scores
        would come from inner nodes."""
        if not self.is_leaf()[self.nodes_after_walk()].all():
            raise SpecError(f"model.npz: some paths have not reached a leaf after {self.depth}")

    def _check_cover(self) -> None:
        """Cover counts must be positive and split exactly: a split's two children share its
        rows (TreeSHAP's zero fractions then sum to 1, which its additivity rests on)."""
        cover = self.cover
        assert cover is not None
        if not (np.isfinite(cover).all() and (cover > 0).all()):
            raise SpecError("model.npz: cover counts must be finite and > 0")
        inner = ~self.is_leaf()
        split = cover[self.children[0::2][inner]] + cover[self.children[1::2][inner]]
        if not np.allclose(split, cover[inner], rtol=1e-12, atol=0.0):
            raise SpecError("model.npz: some splits' children do not share their parent's cover")
