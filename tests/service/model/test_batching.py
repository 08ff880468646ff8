"""`MicroBatcher` and `score_batch` built in-process, on a real bundle: what arrives together is
scored in one model call, each request gets its own row's answer, and a failure reaches every
waiting request."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from ml.runtime.bundle import ModelBundle, load_bundle
from service.errors import NotReady
from service.model.batching import MicroBatcher, score_batch


@pytest.fixture(scope="module")
def bundle(bundle_files: dict[str, bytes]) -> ModelBundle:
    return load_bundle(bundle_files)


def rows(n: int) -> list[list[float]]:
    rng = np.random.default_rng(3)
    return rng.normal(size=(n, 30)).tolist()  # type: ignore[no-any-return]


def test_requests_that_arrive_together_share_one_model_call(bundle: ModelBundle) -> None:
    calls: list[int] = []
    batcher = MicroBatcher(lambda: bundle, on_batch=lambda _b, r, _p: calls.append(r.shape[0]))
    wanted = rows(10)

    async def scenario() -> list[tuple[float, ModelBundle]]:
        return list(await asyncio.gather(*(batcher.score_one(row) for row in wanted)))

    answers = asyncio.run(scenario())
    assert calls == [10]
    expected = bundle.score(np.array(wanted))
    assert [p for p, _ in answers] == expected.tolist()  # each its own row, in order
    assert all(used is bundle for _, used in answers)


def test_a_burst_larger_than_one_call_is_split_over_loop_turns(bundle: ModelBundle) -> None:
    calls: list[int] = []
    batcher = MicroBatcher(
        lambda: bundle, max_rows=4, on_batch=lambda _b, r, _p: calls.append(r.shape[0])
    )

    async def scenario() -> None:
        await asyncio.gather(*(batcher.score_one(row) for row in rows(10)))

    asyncio.run(scenario())
    assert calls == [4, 4, 2]


def test_a_failure_reaches_every_waiting_request() -> None:
    def no_bundle() -> ModelBundle:
        raise NotReady("no model loaded")

    batcher = MicroBatcher(no_bundle)

    async def scenario() -> list[BaseException | tuple[float, ModelBundle]]:
        futures = [batcher.score_one(row) for row in rows(3)]
        return list(await asyncio.gather(*futures, return_exceptions=True))

    outcomes = asyncio.run(scenario())
    assert [type(o) for o in outcomes] == [NotReady] * 3


def test_a_batch_is_scored_with_one_bundle_even_if_it_is_swapped_meanwhile(
    bundle: ModelBundle, other_bundle_files: dict[str, bytes]
) -> None:
    other = load_bundle(other_bundle_files)
    served = [bundle, other]

    def current() -> ModelBundle:
        return served.pop(0)  # a reload swaps after the first read

    matrix = np.array(rows(5))
    scored = asyncio.run(score_batch(current, matrix))
    assert scored.bundle is bundle
    assert scored.probabilities.tolist() == bundle.score(matrix).tolist()
