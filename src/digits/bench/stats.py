"""Latency percentiles and throughput of one measured window."""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

PERCENTILES = (50, 95, 99)


@dataclass(frozen=True)
class LatencySummary:
    """Percentiles of request latencies, in seconds (NaN when nothing completed)."""

    p50: float
    p95: float
    p99: float
    mean: float

    @classmethod
    def of(cls, latencies: Sequence[float]) -> "LatencySummary":
        """Summarise latencies with linear interpolation between closest ranks."""
        if len(latencies) == 0:
            nan = float("nan")
            return cls(nan, nan, nan, nan)
        values = np.asarray(latencies, dtype=np.float64)
        p50, p95, p99 = (float(v) for v in np.percentile(values, PERCENTILES))
        return cls(p50=p50, p95=p95, p99=p99, mean=float(values.mean()))


def per_second(count: float, seconds: float) -> float:
    """A rate over a window; 0 for an empty window rather than a division error."""
    return count / seconds if seconds > 0 else 0.0


def ratio(served: float, reference: float) -> float:
    """served / reference, NaN when there is no reference."""
    return served / reference if reference > 0 else float("nan")
