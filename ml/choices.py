"""Defaults the CLI shows, without importing what implements them."""

from __future__ import annotations

from typing import Final

# Production's fraud rate: the full public dataset's 492 frauds in 284,807 transactions.
DEFAULT_PREVALENCE: Final = 0.00172

# The committed sample, split once (data/README.md): nothing trains on the evaluation file.
TRAIN_DATA: Final = "data/creditcard_train.csv.gz"
EVAL_DATA: Final = "data/creditcard_eval.csv.gz"
