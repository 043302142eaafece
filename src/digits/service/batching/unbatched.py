"""Batching off: each request runs by itself, split at ``max_batch_size`` images per call."""

import asyncio
import concurrent.futures
import time

import numpy as np

from digits.service.batching.predictor import Admission, Predict, call_model
from digits.service.metrics import BatchMetrics
from digits.service.settings import BatchingSettings


class UnbatchedPredictor:
    """One model call (or one per ``max_batch_size`` images) per request, in the executor."""

    def __init__(self, predict: Predict, settings: BatchingSettings, metrics: BatchMetrics,
                 executor: concurrent.futures.Executor, *, name: str) -> None:
        self._predict = predict
        self._max_batch_size = settings.max_batch_size
        self._metrics = metrics
        self._executor = executor
        # Images admitted and not yet finished: the same bound as a batcher's queue.
        self._admission = Admission(name, settings.max_queue_images, metrics.queue_depth)

    async def predict(self, pixels: np.ndarray, deadline: float | None = None) -> np.ndarray:
        """Probabilities of exactly these images; raises like ``Batcher.predict``."""
        arrived = time.monotonic()
        self._admission.admit(len(pixels), deadline, arrived)
        loop = asyncio.get_running_loop()
        try:
            parts = []
            for start in range(0, len(pixels), self._max_batch_size):
                chunk = pixels[start:start + self._max_batch_size]
                output, began = await loop.run_in_executor(
                    self._executor, call_model, self._predict, chunk, deadline, self._metrics)
                if start == 0:
                    self._metrics.queue_wait.observe(max(0.0, began - arrived))
                parts.append(output)
            return parts[0] if len(parts) == 1 else np.concatenate(parts)
        finally:
            self._admission.add(-len(pixels))

    async def close(self) -> None:
        """Refuse new calls; return once the running ones have finished."""
        self._admission.closing = True
        await self._admission.drained()
