"""Explanations: exact TreeSHAP over the serving form, checked against the `shap` package on the
bundle's own scikit-learn model, and coefficient x standardised value for the linear model."""

from __future__ import annotations

import io
from typing import Any

import joblib
import numpy as np
import pytest
import shap

from ml.data import Dataset
from ml.runtime.bundle import ExplanationUnavailable, ModelBundle, _verify_canary, load_bundle
from ml.runtime.kinds.base import fold_matrix
from ml.runtime.kinds.linear import LinearModel, LinearShap
from ml.runtime.kinds.tree_ensemble import TreeEnsemble
from ml.runtime.kinds.treeshap import TreeShap, _gauss_legendre_01
from ml.runtime.layout import AUDIT_MODEL_FILE, AUDIT_PREPROCESSOR_FILE, MODEL_FILE
from ml.runtime.manifest import BundleError
from ml.runtime.schema import FEATURE_NAMES
from tests.support.bundle_edits import npz_with, with_file


def audit_copies(files: dict[str, bytes]) -> tuple[Any, Any]:
    """The bundle's scikit-learn preprocessor and model (training side only)."""
    preprocessor = joblib.load(io.BytesIO(files[AUDIT_PREPROCESSOR_FILE]))
    model = joblib.load(io.BytesIO(files[AUDIT_MODEL_FILE]))
    return preprocessor, model


@pytest.fixture(scope="module")
def rows(dev_dataset: Dataset) -> np.ndarray:
    """Every fraud of the sample and as many legitimate rows: the rows analysts ask about."""
    fraud = np.flatnonzero(dev_dataset.y == 1)
    legit = np.flatnonzero(dev_dataset.y == 0)[: fraud.size]
    picked: np.ndarray = dev_dataset.X[np.concatenate([fraud, legit])]
    return picked


def test_tree_explanations_match_the_shap_package(
    strong_files: dict[str, bytes], rows: np.ndarray
) -> None:
    bundle = load_bundle(strong_files)
    preprocessor, model = audit_copies(strong_files)
    reference = shap.TreeExplainer(model)  # path-dependent: no background data
    values = np.asarray(reference.shap_values(preprocessor.transform(rows)), dtype=np.float64)
    expected = values @ fold_matrix()

    explained = bundle.explain(rows)

    assert np.max(np.abs(explained.contributions - expected)) <= 1e-6
    assert explained.base_value == pytest.approx(float(np.ravel(reference.expected_value)[0]))
    total = explained.contributions.sum(axis=1) + explained.base_value
    assert np.max(np.abs(total - explained.log_odds)) <= 1e-6
    assert np.array_equal(explained.probabilities, bundle.score(rows))


def test_the_model_explained_splits_on_one_feature_twice_in_a_path(
    strong_files: dict[str, bytes],
) -> None:
    """The case TreeSHAP merges into one player; the shap comparison above covers it only if
    the model has it."""
    model = load_bundle(strong_files).model
    assert isinstance(model, TreeEnsemble)
    repeats = 0
    for root in model.roots.tolist():
        stack: list[tuple[int, tuple[int, ...]]] = [(root, ())]
        while stack:
            node, seen = stack.pop()
            left, right = int(model.children[2 * node]), int(model.children[2 * node + 1])
            if left == node:
                continue
            feature = int(model.feature[node])
            repeats += feature in seen
            stack += [(left, (*seen, feature)), (right, (*seen, feature))]
    assert repeats > 0


def test_explanations_add_up_on_extreme_rows(
    strong_files: dict[str, bytes], rows: np.ndarray
) -> None:
    bundle = load_bundle(strong_files)
    extreme = np.vstack([rows[:50] * 1e3, rows[:50] * -1e3, np.full((1, rows.shape[1]), 1e12)])
    explained = bundle.explain(extreme)
    total = explained.contributions.sum(axis=1) + explained.base_value
    assert np.max(np.abs(total - explained.log_odds)) <= 1e-6


def test_one_row_and_many_rows_explain_alike(
    strong_files: dict[str, bytes], rows: np.ndarray
) -> None:
    bundle = load_bundle(strong_files)
    together = bundle.explain(rows[:300]).contributions  # over two lookup chunks
    alone = np.vstack([bundle.explain(row[None]).contributions for row in rows[:300]])
    assert np.max(np.abs(together - alone)) <= 1e-12


def test_linear_explanations_are_coefficient_times_standardised_value(
    other_bundle_files: dict[str, bytes], rows: np.ndarray
) -> None:
    bundle = load_bundle(other_bundle_files)
    preprocessor, model = audit_copies(other_bundle_files)
    standardised = preprocessor.transform(rows)
    by_input = model.coef_[0] * standardised  # per model input: hour_sin/cos are two
    expected = by_input @ fold_matrix()

    explained = bundle.explain(rows)

    assert isinstance(bundle.explainer, LinearShap)
    assert np.max(np.abs(explained.contributions - expected)) <= 1e-9
    assert explained.base_value == pytest.approx(float(model.intercept_[0]))
    time = FEATURE_NAMES.index("Time")
    assert np.allclose(explained.contributions[:, time], by_input[:, -2:].sum(axis=1))
    total = explained.contributions.sum(axis=1) + explained.base_value
    assert np.max(np.abs(total - explained.log_odds)) <= 1e-9


def test_a_bundle_without_cover_counts_scores_but_says_why_it_cannot_explain(
    bundle_files: dict[str, bytes], rows: np.ndarray
) -> None:
    files = with_file(bundle_files, MODEL_FILE, npz_with(bundle_files, cover=lambda _: None))
    bundle = load_bundle(files)
    assert np.array_equal(bundle.score(rows), load_bundle(bundle_files).score(rows))
    with pytest.raises(ExplanationUnavailable, match="no cover counts"):
        bundle.explain(rows)


def test_the_load_check_refuses_explanations_that_do_not_add_up(
    bundle_files: dict[str, bytes], other_bundle_files: dict[str, bytes]
) -> None:
    """The canary check at load catches an explainer that does not belong to its model; here,
    the linear model's explainer put on the tree model's bundle."""
    trees = load_bundle(bundle_files)
    linear = load_bundle(other_bundle_files).model
    assert isinstance(linear, LinearModel)
    mismatched = ModelBundle(
        trees.manifest, trees.manifest_sha256, trees.preprocessor, trees.model,
        explainer=LinearShap(linear),
    )  # fmt: skip
    with pytest.raises(BundleError, match="explanations of the canary rows miss") as caught:
        _verify_canary(mismatched)
    assert caught.value.reason == "explanation_mismatch"


def test_trees_too_deep_to_tabulate_get_no_explainer(bundle_files: dict[str, bytes]) -> None:
    model = load_bundle(bundle_files).model
    assert isinstance(model, TreeEnsemble)
    deep = TreeEnsemble(**{**model.__dict__, "depth": 11})
    with pytest.raises(ValueError, match="depth 11 > 10"):
        TreeShap(deep)


@pytest.mark.parametrize("n", range(1, 7))
def test_the_quadrature_is_numpys_gauss_legendre_on_0_1(n: int) -> None:
    nodes, weights = _gauss_legendre_01(n)
    reference_nodes, reference_weights = np.polynomial.legendre.leggauss(n)
    order = np.argsort(nodes)
    assert np.allclose(nodes[order], (reference_nodes + 1) / 2, rtol=0, atol=1e-14)
    assert np.allclose(weights[order], reference_weights / 2, rtol=0, atol=1e-14)
