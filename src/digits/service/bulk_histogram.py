"""A labelled Prometheus histogram that observes a whole numpy array in one step.

prometheus_client's Histogram takes one value per call, about a microsecond each: for
the confidence of every image of a 1,024-image request that is a millisecond of the
event loop. This collector counts an array into its buckets with one numpy call and
exports the samples a Histogram would (``_bucket``, ``_count``, ``_sum``) through the
library's public collector API.
"""

import bisect
import math
import threading
from collections.abc import Iterator, Sequence

import numpy as np
from prometheus_client import CollectorRegistry
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString


class BulkHistogramChild:
    """The buckets of one label set; ``observe_many`` counts an array into them."""

    def __init__(self, bounds: np.ndarray, lock: threading.Lock) -> None:
        self._bounds = bounds  # upper bounds, +Inf last
        self._bound_list = bounds.tolist()  # bisect on a list beats numpy for one value
        self._lock = lock
        self._counts = np.zeros(len(bounds), dtype=np.int64)  # per bucket, not cumulative
        self._sum = 0.0

    def observe_many(self, values: np.ndarray) -> None:
        """Observe every value, as ``Histogram.observe`` would one by one."""
        values = np.asarray(values, dtype=np.float64).ravel()
        # A value belongs to the first bucket whose upper bound is >= it.
        counts = np.bincount(np.searchsorted(self._bounds, values, side="left"),
                             minlength=len(self._bounds))
        total = float(values.sum())
        with self._lock:  # the metrics page is rendered in another thread
            self._counts += counts
            self._sum += total

    def observe(self, value: float) -> None:
        """Observe one value (cheaper than an array of one)."""
        index = bisect.bisect_left(self._bound_list, value)
        with self._lock:
            self._counts[index] += 1
            self._sum += value

    def snapshot(self) -> tuple[list[tuple[str, float]], float]:
        """Cumulative (upper bound, count) pairs and the sum, as exported."""
        with self._lock:
            cumulative, total = np.cumsum(self._counts), self._sum
        return [(floatToGoString(bound), float(count))
                for bound, count in zip(self._bounds, cumulative, strict=True)], total


class BulkHistogram(Collector):
    """A histogram with labels whose children observe arrays; registered in ``registry``."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str],
                 buckets: Sequence[float], registry: CollectorRegistry) -> None:
        self._name = name
        self._documentation = documentation
        self._labelnames = tuple(labelnames)
        self._bounds = np.array([*sorted(buckets), math.inf], dtype=np.float64)
        self._lock = threading.Lock()
        self._children: dict[tuple[str, ...], BulkHistogramChild] = {}
        registry.register(self)

    def labels(self, **labels: str) -> BulkHistogramChild:
        """The child of one label set, created on first use."""
        if set(labels) != set(self._labelnames):
            raise ValueError(f"{self._name}: expected labels {self._labelnames}, got "
                             f"{tuple(labels)}")
        key = tuple(labels[name] for name in self._labelnames)
        with self._lock:
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = BulkHistogramChild(self._bounds, self._lock)
        return child

    def remove(self, **labels: str) -> None:
        """Drop the child of one label set (and its series), if there is one."""
        key = tuple(labels[name] for name in self._labelnames)
        with self._lock:
            self._children.pop(key, None)

    def describe(self) -> Iterator[HistogramMetricFamily]:
        """The metric's name, so the registry refuses a second metric of that name."""
        yield HistogramMetricFamily(self._name, self._documentation, labels=self._labelnames)

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self._name, self._documentation,
                                       labels=self._labelnames)
        with self._lock:
            children = list(self._children.items())
        for key, child in children:
            buckets, total = child.snapshot()
            family.add_metric(list(key), buckets, total)
        yield family
