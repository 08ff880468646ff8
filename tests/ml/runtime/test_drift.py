"""Drift references: deciles of the training rows, carried in the signed manifest."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from ml.data import Dataset
from ml.runtime.bundle import load_bundle
from ml.runtime.drift import BINS, SCORE, TRACKED, DriftReference, psi, tracked_values
from ml.runtime.features import SpecError
from ml.runtime.layout import MANIFEST_FILE
from ml.runtime.manifest import BundleError
from tests.support.bundle_edits import with_manifest


def test_each_bin_holds_a_tenth_of_the_training_rows(strong_files: dict[str, bytes]) -> None:
    reference = load_bundle(strong_files).drift_reference
    assert reference is not None
    assert reference.expected.shape == (len(TRACKED), BINS)
    score = TRACKED.index(SCORE)
    assert np.allclose(reference.expected[score], 0.1, atol=0.002)
    assert np.allclose(reference.expected[TRACKED.index("V14")], 0.1, atol=0.002)
    assert np.allclose(reference.expected.sum(axis=1), 1.0)


def test_ties_collapse_bins_instead_of_emptying_them() -> None:
    """A feature that is zero in most rows (as Amount can be) gets fewer, fuller bins."""
    rows = np.zeros((1000, len(TRACKED) - 1))
    rows[:100, 1] = np.arange(100) + 1.0  # V1: 90 % zeros
    reference = DriftReference.fit(rows, np.linspace(0, 1, 1000))
    v1 = TRACKED.index("V1")
    assert reference.expected[v1][0] == pytest.approx(0.9)
    assert psi(
        reference.expected, reference.bin_counts(tracked_values(rows, np.linspace(0, 1, 1000)))
    )[v1] == pytest.approx(0.0)


def test_psi_is_zero_on_the_reference_and_grows_with_a_shift(
    strong_files: dict[str, bytes], dev_dataset: Dataset
) -> None:
    bundle = load_bundle(strong_files)
    reference = bundle.drift_reference
    assert reference is not None
    rows = dev_dataset.X
    same = psi(reference.expected, reference.bin_counts(tracked_values(rows, bundle.score(rows))))
    assert np.nanmax(same[:-1]) < 0.01  # the inputs of the rows it was cut from (and a few more)
    shifted = rows.copy()
    v14 = TRACKED.index("V14")
    shifted[:, v14] += 0.5 * rows[:, v14].std()
    moved = psi(
        reference.expected, reference.bin_counts(tracked_values(shifted, bundle.score(shifted)))
    )
    assert moved[v14] > 0.2
    assert np.isnan(psi(reference.expected, np.zeros((len(TRACKED), BINS)))).all()


def _broken(raw: dict[str, Any], change: str) -> dict[str, Any]:
    raw = json.loads(json.dumps(raw))
    bins = raw["bins"]
    if change == "descending-edges":
        bins["V3"]["edges"] = bins["V3"]["edges"][::-1]
    elif change == "shares-not-summing-to-one":
        bins["V3"]["expected"] = [0.5] * BINS
    elif change == "missing-feature":
        del bins["Amount"]
    elif change == "non-finite-edge":
        bins["V3"]["edges"][0] = "NaN"
    elif change == "too-many-edges":
        bins["V3"]["edges"] = list(range(20))
    return raw


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("descending-edges", "strictly ascending"),
        ("shares-not-summing-to-one", "shares summing to 1"),
        ("missing-feature", "bins for exactly"),
        ("non-finite-edge", "finite numbers"),
        ("too-many-edges", "at most 9 finite numbers"),
    ],
)
def test_a_malformed_reference_is_refused_naming_what(
    strong_files: dict[str, bytes], change: str, reason: str
) -> None:
    raw = json.loads(strong_files[MANIFEST_FILE])["drift_reference"]
    with pytest.raises(SpecError, match=reason):
        DriftReference.from_json(_broken(raw, change))
    files = with_manifest(strong_files, drift_reference=_broken(raw, change))
    with pytest.raises(BundleError, match=reason) as caught:
        load_bundle(files)
    assert caught.value.reason == "malformed_serving_form"


def test_a_bundle_made_before_drift_monitoring_loads_unmonitored(
    strong_files: dict[str, bytes],
) -> None:
    bundle = load_bundle(with_manifest(strong_files, drift_reference=None))
    assert bundle.drift_reference is None
