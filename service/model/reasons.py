"""Reason codes: an explanation (`ml.runtime.bundle.Explanation`) as analysts read it.

Each row's `k` largest contributions by magnitude, with the raw value the client sent; ties
keep the order of `FEATURE_NAMES`. Contributions are in log-odds: they add up, with the base
value, to the row's log-odds (the probability's logit).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ml.runtime.bundle import Explanation
from ml.runtime.schema import FEATURE_NAMES

MAX_REASONS = len(FEATURE_NAMES)


def top_reasons(rows: np.ndarray, explanation: Explanation, k: int) -> list[list[dict[str, Any]]]:
    """Per row, the `k` inputs that moved its log-odds most, largest first."""
    contributions = explanation.contributions
    order = np.argsort(-np.abs(contributions), axis=1, kind="stable")[:, :k]
    picked = np.take_along_axis(contributions, order, axis=1).tolist()
    values = np.take_along_axis(rows, order, axis=1).tolist()
    return [
        [
            {"feature": FEATURE_NAMES[i], "value": v, "contribution": c}
            for i, v, c in zip(row_order, row_values, row_picked, strict=True)
        ]
        for row_order, row_values, row_picked in zip(order.tolist(), values, picked, strict=True)
    ]
