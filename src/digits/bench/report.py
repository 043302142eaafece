"""The benchmark's results: one row per scenario, printed as a table and saved as JSON.

With several rounds each row holds the median of every figure over the rounds (errors
summed), so one noisy spell on a shared machine does not decide a figure; the JSON keeps
every round.
"""

import json
import math
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from digits.bench.scenarios import Scenario
from digits.bench.stats import LatencySummary


@dataclass(frozen=True)
class ScenarioResult:
    """Served figures of one scenario next to the model's own in-process speed."""

    scenario: Scenario
    requests_per_second: float
    images_per_second: float
    latency: LatencySummary  # seconds
    errors: dict[str, int]
    in_process_images_per_second: float  # the model alone, same images per call
    # Images per model call on the server, from /metrics scraped around the window while
    # serving (approximate: an observation may be half-counted); NaN if unknown (external).
    mean_batch_size: float
    server_cpu_seconds_per_second: float  # 1.0 is one core busy; NaN if unknown (external)
    client_cpu_seconds_per_second: float
    # For encoded images: the server's work done in-process (decode each, then predict).
    in_process_decode_images_per_second: float = math.nan
    round: int = 1  # which pass over the scenarios measured it (0: a median of rounds)

    @property
    def ratio(self) -> float:
        """Served images/s over the model's own images/s at the same request size."""
        if self.in_process_images_per_second <= 0:
            return math.nan
        return self.images_per_second / self.in_process_images_per_second

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


@dataclass
class BenchReport:
    """Everything one run measured, and where it ran."""

    machine: dict[str, Any]
    settings: dict[str, Any]
    # Images per call -> images/s of the model alone (mean of the scenarios' references).
    in_process: dict[int, float]
    results: list[ScenarioResult] = field(default_factory=list)  # every round's

    @property
    def rounds(self) -> int:
        return max((result.round for result in self.results), default=0)

    def summary(self) -> list[ScenarioResult]:
        """One result per scenario, in run order: the only round's, or the medians."""
        by_name: dict[str, list[ScenarioResult]] = {}
        for result in self.results:
            by_name.setdefault(result.scenario.name, []).append(result)
        return [group[0] if len(group) == 1 else median_of(group)
                for group in by_name.values()]

    def to_json(self) -> dict[str, Any]:
        """Plain data (NaN as null) for ``--json``: the summary, then every round."""
        return _without_nan({
            "machine": self.machine,
            "settings": self.settings,
            "in_process_images_per_second": {str(k): v for k, v in self.in_process.items()},
            "results": [_result_json(result) for result in self.summary()],
            "rounds": [_result_json(result) for result in self.results],
        })

    def write_json(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")


def median_of(results: list[ScenarioResult]) -> ScenarioResult:
    """The rounds of one scenario as one result: each figure's median, errors summed.

    The ratio is then the median served images/s over the median in-process images/s.
    """

    def median(name: str, part: Callable[[ScenarioResult], Any] = lambda r: r) -> float:
        values = [float(getattr(part(result), name)) for result in results]
        return math.nan if any(math.isnan(v) for v in values) else statistics.median(values)

    errors: dict[str, int] = {}
    for result in results:
        for code, count in result.errors.items():
            errors[code] = errors.get(code, 0) + count
    return ScenarioResult(
        scenario=results[0].scenario,
        requests_per_second=median("requests_per_second"),
        images_per_second=median("images_per_second"),
        latency=LatencySummary(*(median(name, lambda r: r.latency)
                                 for name in ("p50", "p95", "p99", "mean"))),
        errors=errors,
        in_process_images_per_second=median("in_process_images_per_second"),
        mean_batch_size=median("mean_batch_size"),
        server_cpu_seconds_per_second=median("server_cpu_seconds_per_second"),
        client_cpu_seconds_per_second=median("client_cpu_seconds_per_second"),
        in_process_decode_images_per_second=median("in_process_decode_images_per_second"),
        round=0,
    )


def _result_json(result: ScenarioResult) -> dict[str, Any]:
    return {**asdict(result), "name": result.scenario.name,
            "server": result.scenario.server, "ratio": result.ratio}


COLUMNS = ("scenario", "batching", "req/s", "images/s", "p50 ms", "p95 ms", "p99 ms",
           "errors", "mean batch", "in-process img/s", "ratio", "decode+model img/s")


def table_rows(results: list[ScenarioResult]) -> list[tuple[str, ...]]:
    """The table's cells, formatted, one tuple per scenario."""
    rows: list[tuple[str, ...]] = []
    for result in results:
        scenario = result.scenario
        rows.append((
            scenario.label,
            "-" if scenario.external else "on" if scenario.batching else "off",
            _number(result.requests_per_second),
            _number(result.images_per_second),
            _milliseconds(result.latency.p50),
            _milliseconds(result.latency.p95),
            _milliseconds(result.latency.p99),
            str(result.error_count),
            "-" if math.isnan(result.mean_batch_size) else f"{result.mean_batch_size:.1f}",
            _number(result.in_process_images_per_second),
            "-" if math.isnan(result.ratio) else f"{result.ratio:.2f}",
            _number(result.in_process_decode_images_per_second),
        ))
    return rows


def format_table(results: list[ScenarioResult], markdown: bool = False) -> str:
    """Aligned text table (or a Markdown table for the docs)."""
    rows = [COLUMNS, *table_rows(results)]
    if markdown:
        lines = ["| " + " | ".join(row) + " |" for row in rows]
        lines.insert(1, "|" + "|".join(
            " --- " if index < 2 else " ---: " for index in range(len(COLUMNS))) + "|")
        return "\n".join(lines)
    widths = [max(len(row[index]) for row in rows) for index in range(len(COLUMNS))]
    lines = []
    for number, row in enumerate(rows):
        cells = [cell.ljust(width) if index < 2 else cell.rjust(width)
                 for index, (cell, width) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
        if number == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _number(value: float) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def _milliseconds(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.2f}"


def _without_nan(value: Any) -> Any:
    """JSON has no NaN: None instead, recursively."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _without_nan(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nan(item) for item in value]
    return value
