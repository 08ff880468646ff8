"""The transaction schema of the public ULB / Kaggle `creditcard.csv` file.

Kept free of pandas so that the serving side can import it.
"""

from typing import Final

FEATURE_NAMES: Final[tuple[str, ...]] = ("Time", *(f"V{i}" for i in range(1, 29)), "Amount")
LABEL: Final = "Class"
COLUMNS: Final[tuple[str, ...]] = (*FEATURE_NAMES, LABEL)
N_FEATURES: Final = len(FEATURE_NAMES)

# Class counts of the full public dataset: what production prevalence looks like.
PRODUCTION_FRAUDS: Final = 492
PRODUCTION_LEGIT: Final = 284_315
PRODUCTION_PREVALENCE: Final = PRODUCTION_FRAUDS / (PRODUCTION_FRAUDS + PRODUCTION_LEGIT)
