"""The vocabulary's translation to HTTP, in one table: every error the service names has its
own status, and the store's and bundle's errors become the 502 or 503 a failed load answers."""

from __future__ import annotations

import inspect

import pytest

import service.errors as vocabulary
from ml.runtime.manifest import BundleError
from ml.runtime.store import NoProductionModel, ObjectNotFound, StoreError, StoreUnavailable
from service.api.errors import STATUS, as_answer


def named_errors() -> list[type[vocabulary.ServiceError]]:
    return [
        kind
        for _, kind in inspect.getmembers(vocabulary, inspect.isclass)
        if issubclass(kind, vocabulary.ServiceError) and kind is not vocabulary.ServiceError
    ]


def test_every_named_error_has_its_own_status_and_code() -> None:
    kinds = named_errors()
    assert set(kinds) <= set(STATUS), "a new error needs its status in service/api/errors.py"
    assert all(400 <= STATUS[kind] < 600 and STATUS[kind] != 500 for kind in kinds)
    assert len({kind.code for kind in kinds}) == len(kinds)


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (StoreUnavailable("timed out"), 503, "store_unavailable"),
        (NoProductionModel("nothing promoted"), 503, "no_production_model"),
        (ObjectNotFound("models/v9/manifest.json"), 502, "bundle_not_found"),
        (BundleError("unsigned", "no signature"), 502, "unsigned"),
        (StoreError("anything else"), 502, "store_error"),
        (vocabulary.TooLarge("1,001 rows"), 413, "payload_too_large"),
        (vocabulary.ServiceError("a bug"), 500, "internal_error"),
    ],
)
def test_each_kind_is_answered_with_its_status(error: Exception, status: int, code: str) -> None:
    answer = as_answer(error)
    assert (answer.status, answer.code) == (status, code)


def test_anything_else_is_not_answered_but_raised() -> None:
    with pytest.raises(TypeError, match="not one of the answered errors"):
        as_answer(KeyError("a bug"))
