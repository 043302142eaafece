"""What every predictor shares: its interface, the bound on waiting images, the model call.

A predictor runs one model version's calls for the data plane: ``Batcher`` coalesces
concurrent requests, ``UnbatchedPredictor`` runs each alone. Both admit a request only
if its images fit the queue bound, drop work whose deadline has passed, and run the model
in an executor, off the event loop.
"""

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

import numpy as np
from prometheus_client import Gauge

from digits.service import errors
from digits.service.metrics import BatchMetrics

Predict = Callable[[np.ndarray], np.ndarray]


class Predictor(Protocol):
    """Runs one model version for concurrent callers."""

    async def predict(self, pixels: np.ndarray, deadline: float | None = None) -> np.ndarray:
        """uint8 [N, 28, 28] -> float32 [N, classes], for exactly these images."""
        ...

    async def close(self) -> None:
        """Refuse new work, finish what was admitted, then return."""
        ...


class Admission:
    """Images admitted and not yet done, bounded; refuses new work once closing."""

    def __init__(self, name: str, max_images: int, depth: Gauge) -> None:
        self._name = name
        self._max_images = max_images
        self._depth = depth
        self.images = 0
        self.closing = False
        self._drained: asyncio.Future[None] | None = None

    def admit(self, count: int, deadline: float | None, now: float) -> None:
        """Count ``count`` images in, or raise why they cannot wait here."""
        if self.closing:
            raise errors.ModelUnavailable(
                f"model {self._name!r}: this version is shutting down; retry the request")
        if deadline is not None and deadline <= now:
            raise errors.DeadlineExpired("the deadline passed before the request was queued")
        if self.images + count > self._max_images:
            raise errors.Overloaded(
                f"model {self._name!r}: the batching queue is full ({self.images} of "
                f"{self._max_images} images waiting); retry with backoff")
        self.add(count)

    def add(self, count: int) -> None:
        """Change the count (negative: images done or dropped)."""
        self.images += count
        self._depth.set(self.images)
        if self.images == 0 and self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    async def drained(self) -> None:
        """Return once no admitted image is left."""
        if self.images > 0:
            self._drained = asyncio.get_running_loop().create_future()
            await self._drained


def call_model(predict: Predict, pixels: np.ndarray, deadline: float | None,
               metrics: BatchMetrics) -> tuple[np.ndarray, float]:
    """In the executor: check the deadline, run and time the model, check its output.

    Returns the probabilities and the time.monotonic() at which the call began.
    """
    began = time.monotonic()
    if deadline is not None and deadline <= began:
        raise errors.DeadlineExpired(
            "the deadline passed while waiting for the model; the images were not computed")
    output = predict(pixels)
    metrics.inference_duration.observe(time.monotonic() - began)
    metrics.batch_size.observe(len(pixels))
    if output.ndim != 2 or len(output) != len(pixels):
        raise RuntimeError(f"the model returned shape {output.shape} for {len(pixels)} images")
    return output, began
