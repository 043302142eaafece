"""What observing predicted-class confidences costs the event loop, measured three ways.

``python -m digits.bench.histogram_cost`` times, interleaved in rounds, prometheus_client's
``Histogram.observe`` once per value (per-batch observation with the public API), the
service's ``BulkHistogram.observe_many`` (one numpy call per array) and its one-value
``observe``, at 1, 8 and 1,024 values per request; it prints the median time per
request and the load average.
"""

import os
import statistics
import time
from collections.abc import Callable

import numpy as np
from prometheus_client import CollectorRegistry, Histogram

from digits.service.bulk_histogram import BulkHistogram
from digits.service.metrics import CONFIDENCE_BUCKETS

SIZES = (1, 8, 1024)
ROUNDS = 5


def _microseconds_per_call(call: Callable[[], object], seconds: float = 0.2) -> float:
    calls, began = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - began) < seconds:
        call()
        calls += 1
    return elapsed / calls * 1e6


def main() -> None:
    registry = CollectorRegistry()
    plain = Histogram("plain", "one value per call", ["model"], buckets=CONFIDENCE_BUCKETS,
                      registry=registry).labels(model="m")
    bulk = BulkHistogram("bulk", "arrays", ["model"], CONFIDENCE_BUCKETS,
                         registry).labels(model="m")
    load_before = os.getloadavg()
    for size in SIZES:
        values = np.random.default_rng(size).random(size).astype(np.float32)

        def one_by_one(values: np.ndarray = values) -> None:
            for value in values.tolist():
                plain.observe(value)

        def in_bulk(values: np.ndarray = values) -> None:
            bulk.observe_many(values)

        def bulk_one_by_one(values: np.ndarray = values) -> None:
            for value in values.tolist():
                bulk.observe(value)

        ways: dict[str, Callable[[], object]] = {
            "Histogram.observe per value": one_by_one,
            "BulkHistogram.observe_many": in_bulk,
            "BulkHistogram.observe per value": bulk_one_by_one,
        }
        times: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(ROUNDS):  # interleaved, so a noisy moment weighs on all alike
            for name, call in ways.items():
                times[name].append(_microseconds_per_call(call))
        cells = ", ".join(f"{name} {statistics.median(t):.1f} us" for name, t in times.items())
        print(f"{size:5d} values per request: {cells}")
    print(f"load average {load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after")


if __name__ == "__main__":
    main()
