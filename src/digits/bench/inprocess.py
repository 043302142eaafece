"""The model's own speed: LoadedModel.predict called directly, in this process."""

import time
from collections.abc import Callable, Sized
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from digits.bench.stats import LatencySummary, per_second

# Calls before timing starts: the first calls build TensorFlow's kernels for the shape.
WARM_UP_CALLS = 3

Batch = TypeVar("Batch", bound=Sized)


@dataclass(frozen=True)
class InProcessResult:
    """Images per second of back-to-back calls of one batch size, with call latencies."""

    images_per_call: int
    calls: int
    images_per_second: float
    latency: LatencySummary


def measure(
    predict: Callable[[Batch], object],
    batch: Batch,
    duration: float,
    max_calls: int = 1_000_000,
) -> InProcessResult:
    """Call ``predict(batch)`` back to back for ``duration`` seconds (or ``max_calls``)."""
    for _ in range(WARM_UP_CALLS):
        predict(batch)
    latencies: list[float] = []
    began = time.perf_counter()
    stop_at = began + duration
    now = began
    while now < stop_at and len(latencies) < max_calls:
        predict(batch)
        ended = time.perf_counter()
        latencies.append(ended - now)
        now = ended
    return InProcessResult(
        images_per_call=len(batch),
        calls=len(latencies),
        images_per_second=per_second(len(latencies) * len(batch), now - began),
        latency=LatencySummary.of(latencies),
    )


def decode_and_predict(
    predict: Callable[[np.ndarray], object], decode: Callable[[bytes], np.ndarray]
) -> Callable[[list[bytes]], object]:
    """A callable doing what the server does for encoded images: decode each, then predict."""

    def run(encoded: list[bytes]) -> object:
        return predict(np.stack([decode(data) for data in encoded]))

    return run

