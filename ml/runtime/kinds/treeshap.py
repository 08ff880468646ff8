"""Why a tree ensemble's row scored as it did: each raw input's contribution to the log-odds.

`TreeShap` is exact path-dependent TreeSHAP (Lundberg et al. 2020, the `shap` package's
  `TreeExplainer` default without background data) over the serving form's trees and their
  training cover counts. It is tabulated, not recursed: a leaf's share of each path feature
  depends only on which of its (at most `depth`) path splits the row goes right at, so every
  leaf gets a table of 2^depth patterns, computed once at load. A row then costs one comparison
  per split, one table lookup per leaf and feature on its path, and one sum per input (depth 4,
  120 trees: ~1,500 leaves, a 750 KB table; see docs/performance.md for the speed).

Model inputs derived from one raw input are folded back onto it: log_amount onto Amount, the
time of day's sine and cosine onto Time (`ml.runtime.features.OUTPUT_SOURCES`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Protocol

import numpy as np

from ml.runtime.features import SpecError
from ml.runtime.kinds.base import fold_matrix
from ml.runtime.schema import FEATURE_NAMES

# 2^depth patterns per leaf: depth 10 is 1,024 patterns x 10 values per leaf; deeper trees
# would need the recursive algorithm, and are refused an explainer rather than made slow.
MAX_TABULATED_DEPTH = 10
# Tabulating holds (leaves, patterns, depth, quadrature nodes) float64 values for a moment:
# 8M is 64 MB. Today's model needs 0.3M; a bundle asking for more gets no explainer.
MAX_TABLE_VALUES = 8_000_000
TABULATE_LEAVES = 32  # leaves tabulated together: ~50 KB temporaries at depth 4

# Rows per table lookup. Measured on 1,000 rows (2 vCPU EPYC, one thread): 8 rows 27k rows/s,
# 32 42k, 48 46k, 96 43k, 128 14k (its ~5 MB index and share arrays fall off a cliff).
CHUNK_ROWS = 48


class Trees(Protocol):
    """What TreeSHAP reads of a tree ensemble (`ml.runtime.kinds.tree_ensemble`)."""

    @property
    def feature(self) -> np.ndarray: ...

    @property
    def threshold(self) -> np.ndarray: ...

    @property
    def missing_right(self) -> np.ndarray: ...

    @property
    def children(self) -> np.ndarray: ...

    @property
    def value(self) -> np.ndarray: ...

    @property
    def depth(self) -> int: ...

    @property
    def baseline(self) -> float: ...

    @property
    def cover(self) -> np.ndarray | None: ...

    def is_leaf(self) -> np.ndarray: ...

    def nodes_after_walk(self) -> np.ndarray: ...


class TreeShap:
    def __init__(self, model: Trees) -> None:
        if model.cover is None:
            raise SpecError("model.npz has no cover counts: this bundle cannot be explained")
        if model.depth > MAX_TABULATED_DEPTH:
            raise SpecError(f"trees of depth {model.depth} > {MAX_TABULATED_DEPTH}")
        depth = max(model.depth, 1)
        leaves, path_node, went_right = _leaf_paths(model, depth)
        n_leaves = leaves.size
        if n_leaves * (1 << depth) * depth * (depth // 2 + 1) > MAX_TABLE_VALUES:
            raise SpecError(f"{n_leaves} leaves of depth {depth}: too large to tabulate")
        self._depth = depth
        self._n_leaves = n_leaves
        # Paths are padded to `depth` with a neutral split: z = 1, never taken right, no player.
        on_path = path_node >= 0
        inner, column = np.unique(path_node[on_path], return_inverse=True)
        path_col = np.full((n_leaves, depth), inner.size, dtype=np.intp)  # the all-False column
        path_col[on_path] = column
        node = np.where(on_path, path_node, 0)
        child = model.children[2 * node + went_right]
        zero_fraction = np.where(on_path, model.cover[child] / model.cover[node], 1.0)
        slot_feature = np.where(on_path, model.feature[node], -1)
        values = model.value[leaves]
        self._inner_feature = model.feature[inner]
        self._inner_threshold = model.threshold[inner]
        self._inner_missing_right = model.missing_right[inner]
        self._path_col = path_col
        # A few leaves at a time: tabulating all at once held ~6 MB of temporaries, and the
        # worker kept ~2.5 MB of it after they were freed (heap fragments).
        table = np.empty((n_leaves << depth) * depth)  # `(leaf << depth | pattern) * depth + slot`
        player = np.empty((n_leaves, depth), dtype=np.intp)
        for first in range(0, n_leaves, TABULATE_LEAVES):
            part = slice(first, first + TABULATE_LEAVES)
            part_table, player[part] = _tabulate(
                values[part], went_right[part], zero_fraction[part], slot_feature[part]
            )
            table[(first << depth) * depth : ((first << depth) * depth) + part_table.size] = (
                part_table.ravel()
            )
        self._table = table
        # Only slots that hold a player can have a share: take those, ordered by the raw input
        # they fold onto, so one `np.add.reduceat` sums each input's shares.
        raw_of = fold_matrix().argmax(axis=1)  # model input -> raw input
        leaf_of, slot_of = np.nonzero(player >= 0)
        raw = raw_of[player[leaf_of, slot_of]]
        order = np.argsort(raw, kind="stable")
        leaf_of, slot_of, raw = leaf_of[order], slot_of[order], raw[order]
        self._share_leaf = leaf_of
        self._share_offset = ((leaf_of << depth) * depth + slot_of).astype(np.intp)
        self._raw_inputs, self._raw_starts = np.unique(raw, return_index=True)
        # E[f] under the cover weights: each leaf's value times its share of the training rows.
        self._base = model.baseline + float(values @ zero_fraction.prod(axis=1))

    @property
    def base_value(self) -> float:
        return self._base

    def contributions(self, model_inputs: np.ndarray) -> np.ndarray:
        X = np.ascontiguousarray(model_inputs, dtype=np.float64)
        n = X.shape[0]
        out = np.empty((n, len(FEATURE_NAMES)), dtype=np.float64)
        work = _Work.allocate(
            min(n, CHUNK_ROWS), self._inner_feature.size, self._n_leaves, self._share_leaf.size
        )
        for start in range(0, n, CHUNK_ROWS):
            chunk = X[start : start + CHUNK_ROWS]
            self._chunk(chunk, work.sized(chunk.shape[0]), out[start : start + chunk.shape[0]])
        return out

    def _chunk(self, X: np.ndarray, work: _Work, out: np.ndarray) -> None:
        """Every step writes into `work`'s buffers: allocating them per chunk cost more than
        the arithmetic (page faults on each fresh array: 86 ms for 1,000 rows in the service,
        against ~25 ms with buffers made once per call)."""
        np.take(X, self._inner_feature, axis=1, out=work.inputs)
        np.greater(work.inputs, self._inner_threshold, out=work.right[:, :-1])
        if np.isnan(work.inputs).any():  # NaN where scikit-learn sends it, as raw() does
            missing = np.isnan(work.inputs) & self._inner_missing_right
            work.right[:, :-1] |= missing
        np.take(work.right, self._path_col[:, 0], axis=1, out=work.pattern)  # where rows turned
        for slot in range(1, self._depth):
            np.take(work.right, self._path_col[:, slot], axis=1, out=work.turn)
            np.left_shift(work.turn, slot, out=work.turn)
            np.add(work.pattern, work.turn, out=work.pattern)
        np.take(work.pattern, self._share_leaf, axis=1, out=work.index)
        np.multiply(work.index, self._depth, out=work.index)
        np.add(work.index, self._share_offset, out=work.index)
        np.take(self._table, work.index, out=work.shares)  # player slots, grouped by raw input
        out[:] = 0.0
        out[:, self._raw_inputs] = np.add.reduceat(work.shares, self._raw_starts, axis=1)


@dataclass(frozen=True)
class _Work:
    """Buffers for one `contributions` call, reused by each of its chunks."""

    inputs: np.ndarray  # float64 (rows, splits): each split's input value
    right: np.ndarray  # intp (rows, splits + 1): 1 where the row goes right; last column 0
    pattern: np.ndarray  # intp (rows, leaves)
    turn: np.ndarray  # intp (rows, leaves)
    index: np.ndarray  # intp (rows, player slots)
    shares: np.ndarray  # float64 (rows, player slots)

    @classmethod
    def allocate(cls, rows: int, splits: int, leaves: int, slots: int) -> _Work:
        return cls(
            inputs=np.empty((rows, splits)),
            right=np.zeros((rows, splits + 1), dtype=np.intp),
            pattern=np.empty((rows, leaves), dtype=np.intp),
            turn=np.empty((rows, leaves), dtype=np.intp),
            index=np.empty((rows, slots), dtype=np.intp),
            shares=np.empty((rows, slots)),
        )

    def sized(self, rows: int) -> _Work:
        """The first `rows` rows of each buffer (the last chunk may be shorter)."""
        if rows == self.inputs.shape[0]:
            return self
        return _Work(*(getattr(self, f.name)[:rows] for f in fields(self)))


def _leaf_paths(model: Trees, depth: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every leaf reachable from a root; for each, the splits above it (leaf first, -1 past
    the root) and whether the path went right at each. The order of a path's splits does not
    matter to TreeSHAP. Array work only: a loop building per-leaf Python lists left ~2 MB of
    heap behind in the worker."""
    n = model.feature.size
    own = np.arange(n)
    left, right = model.children[0::2], model.children[1::2]
    inner = ~model.is_leaf()
    parent = np.full(n, -1, dtype=np.intp)
    parent[left[inner]] = own[inner]
    parent[right[inner]] = own[inner]
    is_right = np.zeros(n, dtype=bool)
    is_right[right[inner]] = True
    leaves = model.nodes_after_walk()  # the loaded model's check: all leaves
    path_node = np.full((leaves.size, depth), -1, dtype=np.intp)
    went_right = np.zeros((leaves.size, depth), dtype=np.intp)
    below = leaves.copy()  # each path's node just under the split being filled in
    for slot in range(depth):
        above = np.where(below >= 0, parent[np.maximum(below, 0)], -1)
        path_node[:, slot] = above
        went_right[:, slot] = (above >= 0) & is_right[np.maximum(below, 0)]
        below = above
    return leaves, path_node, went_right


def _gauss_legendre_01(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of n-point Gauss-Legendre quadrature on [0, 1], by Newton's method on
    the Legendre polynomial P_n. `np.polynomial.legendre.leggauss` gives the same to 1e-15, but
    importing numpy.polynomial (and the LAPACK call it makes) cost each worker 1.2 MB."""
    x = np.cos(np.pi * (np.arange(1, n + 1) - 0.25) / (n + 0.5))  # close to the roots
    for _ in range(100):
        before, value = np.ones_like(x), x.copy()  # P_0, P_1; then up to P_(n-1), P_n
        for k in range(2, n + 1):
            before, value = value, ((2 * k - 1) * x * value - (k - 1) * before) / k
        slope = n * (x * value - before) / (x * x - 1.0)
        step = value / slope
        x = x - step
        if np.max(np.abs(step)) < 1e-15:
            break
    weights = 2.0 / ((1.0 - x * x) * slope * slope)
    return (x + 1.0) / 2.0, weights / 2.0


def _tabulate(
    values: np.ndarray, went_right: np.ndarray, zero_fraction: np.ndarray, slot_feature: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each leaf's SHAP shares for every pattern of right turns at its path splits.

    For a leaf of value v whose path holds the distinct features U, with z_j the fraction of the
    training cover that follows the path at j's splits and o_j = 1 if the row does:

        phi_i = v (o_i - z_i) * sum over S in U\\{i} of |S|! (|U|-|S|-1)! / |U|!
                                 * prod_{j in S} o_j * prod_{j not in S, j != i} z_j
              = v (o_i - z_i) * integral_0^1 prod_{j != i} (t o_j + (1 - t) z_j) dt,

    a polynomial of degree < depth in t, which Gauss-Legendre quadrature with depth // 2 + 1
    nodes integrates exactly. A feature split on twice in a path is one player (its z and o are
    the products over its splits); its share goes to its first slot. Returns a
    (leaves * 2^depth, depth) table, row `leaf << depth | pattern`, and each slot's player: the
    model input it holds the share of, or -1 (padding, or a repeat merged into an earlier slot).
    """
    n_leaves, depth = went_right.shape
    player = slot_feature.copy()  # -1: padding, or a repeat merged into an earlier slot
    patterns = 1 << depth
    bits = ((np.arange(patterns)[:, None] >> np.arange(depth)[None, :]) & 1).astype(bool)
    follows = bits[None, :, :] == went_right[:, None, :]  # (leaves, patterns, slots)
    follows |= player[:, None, :] < 0  # padding: neutral
    one = follows.astype(np.float64)
    zero = np.broadcast_to(zero_fraction[:, None, :], one.shape).copy()
    # Merge repeated features onto their first slot; later slots become neutral (o = z = 1).
    for later in range(1, depth):
        for first in range(later):
            same = (player[:, first] == player[:, later]) & (player[:, later] >= 0)
            if not same.any():
                continue
            one[same, :, first] *= one[same, :, later]
            zero[same, :, first] *= zero[same, :, later]
            one[same, :, later] = 1.0
            zero[same, :, later] = 1.0
            player[same, later] = -1
    t, w = _gauss_legendre_01(depth // 2 + 1)
    factor = t * one[..., None] + (1.0 - t) * zero[..., None]  # (leaves, patterns, slots, q)
    others = factor.prod(axis=2, keepdims=True) / factor  # prod over j != i; factor > 0
    integral = (others * w).sum(axis=3)
    table = values[:, None, None] * (one - zero) * integral
    return np.ascontiguousarray(table.reshape(n_leaves * patterns, depth)), player
