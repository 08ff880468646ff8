"""The model kinds the runtime can serve: one module each, and this table of them.

A new kind is a module here (its scorer, explainer and `from_arrays` loader, see `base.py`) and
one entry in `SERVING_KINDS`; training adds one entry to `ml.families.FAMILIES`.
"""

from __future__ import annotations

import io
import zipfile

import numpy as np

from ml.runtime.features import SpecError
from ml.runtime.kinds.base import Explainer, Scorer, sigmoid
from ml.runtime.kinds.linear import LinearModel
from ml.runtime.kinds.tree_ensemble import TreeEnsemble

__all__ = ["SERVING_KINDS", "Explainer", "Scorer", "load_scorer", "sigmoid"]

SERVING_KINDS: dict[str, type[Scorer]] = {
    TreeEnsemble.kind: TreeEnsemble,
    LinearModel.kind: LinearModel,
}


def load_scorer(kind: str, data: bytes) -> Scorer:
    """Parse `model.npz` of the given kind; never unpickles (`allow_pickle=False`)."""
    if kind not in SERVING_KINDS:
        raise SpecError(f"unknown model kind {kind!r}; this code reads {sorted(SERVING_KINDS)}")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise SpecError(f"model.npz cannot be read: {exc}") from None
    return SERVING_KINDS[kind].from_arrays(arrays)
