"""Clients that balance over replicas: several targets or a dns:/// name, round-robin."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_asyncio

from digits.service.client import ClassifierClient

from support.models import install
from support.prometheus import sample_value
from support.servers import Running, loopback_settings, running_server, wait_available

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def replicas(model_templates: Any, tmp_path_factory: pytest.TempPathFactory
                   ) -> AsyncIterator[list[Running]]:
    """Two servers on one shared model volume, as replicas are."""
    models_root = tmp_path_factory.mktemp("models")
    install(model_templates.dense_a, models_root, "mnist", 1)
    async with running_server(loopback_settings(models_root)) as first, \
            running_server(loopback_settings(models_root)) as second:
        for running in (first, second):
            await wait_available(running, "mnist", [1])
        yield [first, second]


def _classified(running: Running) -> float:
    return sample_value(running.scrape(), "digits_requests_total",
                        {"protocol": "digits.v1/grpc", "method": "Classify", "code": "OK"}) or 0.0


async def test_calls_go_round_robin_over_the_replicas(replicas: list[Running]) -> None:
    before = [_classified(running) for running in replicas]
    target = ",".join(running.target for running in replicas)
    pixels = np.zeros((1, 28, 28), np.uint8)

    def calls() -> None:
        with ClassifierClient(target, timeout=10) as client:
            for _ in range(40):
                client.classify_pixels(pixels)

    await asyncio.to_thread(calls)
    served = [_classified(running) - count for running, count in zip(replicas, before,
                                                                     strict=True)]
    assert sum(served) == 40
    assert min(served) >= 10, f"calls per replica: {served}"


async def test_a_dns_name_reaches_the_server(replicas: list[Running], tmp_path: Path) -> None:
    target = f"dns:///localhost:{replicas[0].port}"

    def call() -> int:
        with ClassifierClient(target, timeout=10) as client:
            return int(client.classify_pixels(np.zeros((2, 28, 28), np.uint8)).version)

    assert await asyncio.to_thread(call) == 1


async def test_replicas_switching_versions_at_different_moments(
        model_templates: Any, tmp_path: Path) -> None:
    """Replicas of one volume load a new version a poll interval apart: unpinned calls
    never fail (they get either version while the replicas disagree, then the new one),
    and a pinned version always answers from that version."""
    install(model_templates.dense_a, tmp_path, "mnist", 1)
    async with running_server(loopback_settings(tmp_path, poll_interval=0.1)) as quick, \
            running_server(loopback_settings(tmp_path, poll_interval=2.0)) as slow:
        for running in (quick, slow):
            await wait_available(running, "mnist", [1])
        target = f"{quick.target},{slow.target}"
        stop = asyncio.Event()
        pixels = np.zeros((1, 28, 28), np.uint8)
        unpinned: list[int] = []
        pinned: list[int] = []

        def calls() -> None:
            with ClassifierClient(target, timeout=10) as client:
                for _ in range(2000):  # bounded; ends once both replicas have version 2
                    # Three calls a round, so each kind meets both replicas in turn.
                    for _ in range(2):
                        unpinned.append(int(client.classify_pixels(pixels).version))
                    pinned.append(int(client.classify_pixels(pixels, version=1).version))
                    if stop.is_set():
                        return

        caller = asyncio.create_task(asyncio.to_thread(calls))
        await asyncio.sleep(0.3)
        install(model_templates.dense_b, tmp_path, "mnist", 2)
        for running in (quick, slow):
            await wait_available(running, "mnist", [1, 2])
        answered = len(unpinned)
        while len(unpinned) < answered + 20 and not caller.done():
            await asyncio.sleep(0.05)
        stop.set()
        await caller  # raises if any call failed
    assert set(pinned) == {1}
    assert unpinned[0] == 1 and unpinned[-10:] == [2] * 10
    # While only the quick replica had version 2, unpinned calls got either version.
    switched = unpinned.index(2)
    assert 1 in unpinned[switched:], "the replicas never disagreed: the test proves nothing"
