"""A new model kind is one module and one table entry: this test adds one, a decision stump,
without touching the source, and takes it through training, the bundle's checks, scoring and
explaining."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pytest

from ml.data import Dataset
from ml.families import FAMILIES, Family
from ml.runtime.bundle import load_bundle
from ml.runtime.features import SpecError
from ml.runtime.kinds import SERVING_KINDS, load_scorer
from ml.runtime.kinds.base import fold_matrix, npz_array
from ml.train import train_bundle

LOGIT_CLIP = 1e-12  # a pure leaf's log-odds would be infinite


@dataclass(frozen=True, eq=False)
class Stump:
    kind: ClassVar[str] = "stump"
    handles_missing: ClassVar[bool] = False

    feature: int
    threshold: float
    leaf_probability: np.ndarray  # float64 (2,): left (x <= threshold), right

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        right = np.asarray(features, dtype=np.float64)[:, self.feature] > self.threshold
        probabilities: np.ndarray = self.leaf_probability[right.astype(np.intp)]
        return probabilities

    def raw(self, features: np.ndarray) -> np.ndarray:
        p = np.clip(self.predict_proba(features), LOGIT_CLIP, 1 - LOGIT_CLIP)
        log_odds: np.ndarray = np.log(p / (1 - p))
        return log_odds

    def to_npz(self) -> bytes:
        buffer = io.BytesIO()
        np.savez(
            buffer,
            feature=np.int32(self.feature),
            threshold=np.float64(self.threshold),
            leaf_probability=self.leaf_probability,
        )
        return buffer.getvalue()

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Stump:
        leaves = npz_array(arrays, "leaf_probability", np.float64, 1, 2)
        if not ((leaves >= 0) & (leaves <= 1)).all():
            raise SpecError("model.npz: leaf probabilities outside 0..1")
        feature = int(npz_array(arrays, "feature", np.int32, 0))
        return cls(feature, float(npz_array(arrays, "threshold", np.float64, 0)), leaves)

    def explainer(self) -> StumpShap:
        return StumpShap(self)


class StumpShap:
    """All of a row's log-odds beyond the left leaf's goes to the one input split on."""

    def __init__(self, stump: Stump) -> None:
        self._stump = stump
        self._raw_input = int(fold_matrix()[stump.feature].argmax())
        self._base = float(stump.raw(np.full((1, stump.feature + 1), -np.inf))[0])

    @property
    def base_value(self) -> float:
        return self._base

    def contributions(self, model_inputs: np.ndarray) -> np.ndarray:
        out = np.zeros((model_inputs.shape[0], fold_matrix().shape[1]))
        out[:, self._raw_input] = self._stump.raw(model_inputs) - self._base
        return out


def _stump(seed: int) -> Any:
    from sklearn.tree import DecisionTreeClassifier

    return DecisionTreeClassifier(max_depth=1, random_state=seed)


def _export_stump(model: Any) -> Stump:
    tree = model.tree_
    counts = tree.value[:, 0, :]
    leaf_probability = counts[:, 1] / counts.sum(axis=1)
    left, right = int(tree.children_left[0]), int(tree.children_right[0])
    return Stump(
        int(tree.feature[0]),
        float(tree.threshold[0]),
        np.array([leaf_probability[left], leaf_probability[right]], dtype=np.float64),
    )


@pytest.fixture
def stump_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(SERVING_KINDS, Stump.kind, Stump)
    monkeypatch.setitem(FAMILIES, "stump", Family("a decision stump", _stump, _export_stump))


@pytest.mark.usefixtures("stump_kind")
def test_a_kind_added_in_a_test_trains_loads_scores_and_explains(
    small_dataset: Dataset,
) -> None:
    files = train_bundle(small_dataset, model_name="stump", seed=3)
    bundle = load_bundle(files)  # checksums, serving form, canary rows through every path
    assert bundle.manifest.serving == {"model_kind": "stump"}
    assert isinstance(bundle.model, Stump)
    probabilities = bundle.score(small_dataset.X[:200])
    assert set(np.unique(probabilities)) <= set(bundle.model.leaf_probability)
    explained = bundle.explain(small_dataset.X[:5])
    assert np.allclose(
        explained.contributions.sum(axis=1) + explained.base_value, explained.log_odds
    )


def test_a_kind_not_in_the_table_is_refused() -> None:
    with pytest.raises(SpecError, match="unknown model kind 'stump'"):
        load_scorer("stump", b"")


def test_every_kind_in_the_table_is_named_as_manifests_record_it() -> None:
    assert {name: kind.kind for name, kind in SERVING_KINDS.items()} == {
        "tree_ensemble": "tree_ensemble",
        "linear": "linear",
    }


def test_the_tree_walk_in_chunks_is_bit_identical_to_one_walk(
    bundle_files: dict[str, bytes], small_dataset: Dataset
) -> None:
    from ml.runtime.kinds.tree_ensemble import WALK_CHUNK_ROWS, TreeEnsemble

    bundle = load_bundle(bundle_files)
    assert isinstance(bundle.model, TreeEnsemble)
    rows = np.resize(small_dataset.X, (2 * WALK_CHUNK_ROWS + 7, small_dataset.X.shape[1]))
    rows[::5, 3] = np.nan  # missing values take their own branch in each chunk too
    inputs = bundle.preprocessor.transform(rows)
    chunked = bundle.model.raw(inputs)
    whole = bundle.model._walk(np.ascontiguousarray(inputs))
    assert chunked.tobytes() == whole.tobytes()


def test_one_row_walks_bit_identical_to_the_same_row_in_a_batch(
    bundle_files: dict[str, bytes], small_dataset: Dataset
) -> None:
    bundle = load_bundle(bundle_files)
    rows = small_dataset.X[:200].copy()
    rows[::3, 5] = np.nan
    inputs = np.ascontiguousarray(bundle.preprocessor.transform(rows))
    together = bundle.model.raw(inputs)
    one_by_one = np.concatenate([bundle.model.raw(inputs[i : i + 1]) for i in range(200)])
    assert one_by_one.tobytes() == together.tobytes()
