"""A fitted scikit-learn model in its serving form (`ml.runtime.scoring`): the training side.

Reads the fitted HistGradientBoostingClassifier's `_predictors` and `_baseline_prediction`
(private, but exported once here at build time under the scikit-learn version that fitted it;
the bundle's canary rows then prove the export scores exactly as scikit-learn did).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ml.runtime.scoring import LinearModel, Scorer, TreeEnsemble


def serving_model(model: Any) -> Scorer:
    name = type(model).__name__
    if name == "HistGradientBoostingClassifier":
        return _tree_ensemble(model)
    if name == "LogisticRegression":
        return _linear(model)
    raise ValueError(f"no serving form for {name}")


def _tree_ensemble(model: Any) -> TreeEnsemble:
    if getattr(model, "n_trees_per_iteration_", 1) != 1:
        raise ValueError("only binary classifiers have a serving form")
    predictors = [iteration[0] for iteration in model._predictors]
    if any(tree.nodes["is_categorical"].any() for tree in predictors):
        raise ValueError("categorical splits have no serving form")
    sizes = [tree.nodes.size for tree in predictors]
    offsets = np.cumsum([0, *sizes])
    nodes = np.concatenate([tree.nodes for tree in predictors])
    own = np.arange(nodes.size)
    base = np.repeat(offsets[:-1], sizes)
    leaf = nodes["is_leaf"].astype(bool)
    children = np.empty(2 * nodes.size, dtype=np.intp)
    children[0::2] = np.where(leaf, own, nodes["left"] + base)  # x <= threshold
    children[1::2] = np.where(leaf, own, nodes["right"] + base)  # x > threshold
    return TreeEnsemble(
        feature=np.where(leaf, 0, nodes["feature_idx"]).astype(np.intp),
        threshold=np.where(leaf, np.inf, nodes["num_threshold"]).astype(np.float64),
        missing_right=~nodes["missing_go_to_left"].astype(bool) & ~leaf,
        children=children,
        value=np.where(leaf, nodes["value"], 0.0).astype(np.float64),
        roots=offsets[:-1].astype(np.intp),
        depth=int(nodes["depth"].max()),
        baseline=float(np.ravel(model._baseline_prediction)[0]),
        cover=nodes["count"].astype(np.float64),
    )


def _linear(model: Any) -> LinearModel:
    coef = np.asarray(model.coef_, dtype=np.float64)
    if coef.shape[0] != 1:
        raise ValueError("only binary logistic regression has a serving form")
    return LinearModel(coef=coef[0].copy(), intercept=float(np.ravel(model.intercept_)[0]))
