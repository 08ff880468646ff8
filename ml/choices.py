"""The training choices the CLI offers, without importing what implements them: building the
`fraudctl` parser must not load scikit-learn (it cost `fraudctl serve` ~1.5 s of start-up)."""

from __future__ import annotations

from typing import Final

# Production's fraud rate: the full public dataset's 492 frauds in 284,807 transactions.
DEFAULT_PREVALENCE: Final = 0.00172

MODEL_NAMES: Final = ("hgb", "logreg")  # ml.train.MODEL_FAMILIES holds one builder for each
# Chosen by measurement (docs/model.md): the tree ensemble beats the linear baseline on mean and
# worst-seed F1 at production prevalence, and its flat scorer costs about as little.
DEFAULT_MODEL: Final = "hgb"
