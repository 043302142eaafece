"""Clients sending continuously while a test changes the server under them."""

import asyncio
import time
from typing import Any

import grpc
import numpy as np

from support.models import expected_probabilities
from support.polling import wait_for
from support.servers import Running

CLIENTS = 4
MAX_REQUESTS_PER_CLIENT = 20000
LOAD_SECONDS_LIMIT = 60.0


class Load:
    """Clients sending continuously until told to stop (bounded in count and time)."""

    def __init__(self, running: Running, weights: dict[int, Any], clients: int = CLIENTS,
                 seconds: float = LOAD_SECONDS_LIMIT) -> None:
        self.running = running
        self.weights = weights  # the dense templates' weights of each version served
        self.seconds = seconds
        self.failures: list[str] = []
        self.versions_seen: list[set[int]] = [set() for _ in range(clients)]
        self.latest: list[int] = [0] * clients  # the version of each client's last answer
        self.answered = 0
        self._stop = asyncio.Event()
        self._tasks = [asyncio.ensure_future(self._client(i)) for i in range(clients)]

    async def _client(self, index: int) -> None:
        generator = np.random.default_rng(index)
        started = time.monotonic()
        for _ in range(MAX_REQUESTS_PER_CLIENT):
            if self._stop.is_set() or time.monotonic() - started > self.seconds:
                return
            pixels = generator.integers(0, 256, (int(generator.integers(1, 40)), 28, 28),
                                        dtype=np.uint8)
            try:
                response = await self.running.classify(pixels)
            except grpc.aio.AioRpcError as error:
                self.failures.append(f"{error.code().name}: {error.details()}")
                continue
            self.answered += 1
            self.versions_seen[index].add(response.version)
            self.latest[index] = response.version
            # Each answer must come entirely from the version it names.
            probabilities = np.array([list(p.probabilities) for p in response.predictions])
            if not np.allclose(probabilities,
                               expected_probabilities(self.weights[response.version], pixels),
                               atol=1e-5):
                self.failures.append(f"wrong probabilities from version {response.version}")

    async def until(self, answered: int) -> None:
        """Wait until ``answered`` more requests have been answered."""
        target = self.answered + answered

        async def reached() -> bool:
            return self.answered >= target or all(task.done() for task in self._tasks)

        await wait_for(reached, f"{answered} more answers")

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)


async def seen_everywhere(load: Load, version: int) -> bool:
    """Whether every client has been answered by ``version``."""
    return all(version in seen for seen in load.versions_seen)


async def answered_by(load: Load, version: int) -> bool:
    """Whether every client's latest answer came from ``version``."""
    await asyncio.sleep(0.05)
    return all(latest == version for latest in load.latest)
