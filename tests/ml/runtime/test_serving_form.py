"""A bundle's serving files from a hostile store: every malformed model.npz or preprocessor.json
is refused with its reason, before a row is scored."""

from __future__ import annotations

import json

import pytest

from ml.runtime.bundle import load_bundle
from ml.runtime.layout import (
    MODEL_FILE,
    PREPROCESSOR_FILE,
)
from ml.runtime.manifest import BundleError
from tests.support.bundle_edits import MALFORMED_MODEL, MALFORMED_REASONS, with_file


@pytest.mark.parametrize("case", sorted(MALFORMED_MODEL))
def test_a_malformed_model_file_is_refused_with_its_reason(
    bundle_files: dict[str, bytes], case: str
) -> None:
    files = with_file(bundle_files, MODEL_FILE, MALFORMED_MODEL[case](bundle_files))
    with pytest.raises(BundleError, match=MALFORMED_REASONS[case]) as caught:
        load_bundle(files)
    assert caught.value.reason == "malformed_serving_form"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "not JSON"),
        (b'{"kind": "pickle"}', "is not of kind"),
        (json.dumps({"kind": "transaction-features/1", "outputs": []}).encode(), "other model"),
    ],
)
def test_a_malformed_preprocessor_file_is_refused(
    bundle_files: dict[str, bytes], content: bytes, message: str
) -> None:
    with pytest.raises(BundleError, match=message) as caught:
        load_bundle(with_file(bundle_files, PREPROCESSOR_FILE, content))
    assert caught.value.reason == "malformed_serving_form"


def test_preprocessor_numbers_must_be_finite_and_scales_positive(
    bundle_files: dict[str, bytes],
) -> None:
    spec = json.loads(bundle_files[PREPROCESSOR_FILE])
    for change, message in ((("scale", 0, 0.0), "must be > 0"), (("mean", 3, "x"), "finite")):
        key, index, value = change
        broken = json.loads(json.dumps(spec))
        broken[key][index] = value
        with pytest.raises(BundleError, match=message):
            load_bundle(with_file(bundle_files, PREPROCESSOR_FILE, json.dumps(broken).encode()))
