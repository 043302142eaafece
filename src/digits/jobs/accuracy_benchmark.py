"""Full-settings accuracy benchmark: every experiment at its defaults, against its target.

Run through ``scripts/bench-accuracy``. Each experiment runs as its own ``digits train``
process (as a user would run it) into a scratch models/reports directory; the table
gives test accuracy, target, pass/fail, wall time and the machine's load average, since
these machines are shared and the times depend on it.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import click

from digits.jobs.robustness import JSON_FILENAME, TARGET_ACCURACY

# The CNN's wall-time budget on a 2-core CPU (not shared with other busy work: the
# table gives the load average beside the time).
CNN_SECONDS = 3 * 60
# The robust recipe's larger budget: more epochs over more (damaged) images.
ROBUST_CNN_SECONDS = 8 * 60


@dataclass(frozen=True)
class Benchmark:
    """One experiment run at its default settings and the accuracy it must reach."""

    label: str
    arguments: tuple[str, ...]
    target: float | None
    max_seconds: float | None = None
    # When set, the exported version is also scored on corrupted digits
    # (``digits evaluate --robustness``) and every corruption must reach this accuracy.
    robustness_target: float | None = None


BENCHMARKS = (
    Benchmark("binary-numpy", ("binary", "--impl", "numpy"), 0.998),
    Benchmark("binary-keras", ("binary", "--impl", "keras"), 0.998),
    Benchmark("multiclass", ("multiclass",), 0.983),
    Benchmark("cnn", ("cnn",), 0.994, max_seconds=CNN_SECONDS),
    Benchmark("cnn-robust", ("cnn", "--recipe", "robust", "--name", "mnist-robust"), 0.994,
              max_seconds=ROBUST_CNN_SECONDS, robustness_target=TARGET_ACCURACY),
    Benchmark("regularization", ("regularization",), None),
)


@dataclass(frozen=True)
class Outcome:
    """What one benchmark run measured."""

    benchmark: Benchmark
    accuracy: float | None
    seconds: float
    load_before: float
    load_after: float
    detail: str
    # The corruption scored lowest and its accuracy, for benchmarks with a robustness target.
    lowest: tuple[str, float] | None = None

    @property
    def passed(self) -> bool:
        if self.accuracy is None:
            return False
        accurate = self.benchmark.target is None or self.accuracy >= self.benchmark.target
        fast = self.benchmark.max_seconds is None or self.seconds <= self.benchmark.max_seconds
        robust = self.benchmark.robustness_target is None or (
            self.lowest is not None and self.lowest[1] >= self.benchmark.robustness_target)
        return accurate and fast and robust

    def row(self) -> str:
        target = "-" if self.benchmark.target is None else f">= {self.benchmark.target:.1%}"
        if self.benchmark.max_seconds is not None:
            target += f", <= {self.benchmark.max_seconds / 60:.0f} min"
        if self.benchmark.robustness_target is not None:
            target += f", every corruption >= {self.benchmark.robustness_target:.0%}"
        accuracy = "failed" if self.accuracy is None else f"{self.accuracy:.2%}"
        return (f"| {self.benchmark.label} | {accuracy} | {target} | "
                f"{'pass' if self.passed else 'FAIL'} | {self.seconds / 60:.1f} min | "
                f"{self.load_before:.1f} / {self.load_after:.1f} | {self.detail} |")


def _digits(arguments: list[str], log_path: Path) -> Path | None:
    """Run ``digits ARGUMENTS``, appending both streams to ``log_path`` as they come (so a
    long run can be followed there); the reports directory it printed, None if it failed."""
    with log_path.open("a") as log_file:
        completed = subprocess.run([sys.executable, "-m", "digits", *arguments],
                                   stdout=log_file, stderr=subprocess.STDOUT, check=False)
    report_lines = [line for line in log_path.read_text().splitlines()
                    if line.startswith("reports in ")]
    if completed.returncode != 0 or not report_lines:
        return None
    return Path(report_lines[-1].removeprefix("reports in "))


def _lowest_corruption(version_dir: str, workdir: Path,
                       log_path: Path) -> tuple[str, float] | None:
    """Score an exported version on corrupted digits: its weakest row."""
    report_dir = _digits(["evaluate", version_dir, "--robustness",
                          "--reports", str(workdir / "reports")], log_path)
    if report_dir is None:
        return None
    rows = json.loads((report_dir / JSON_FILENAME).read_text())
    lowest = min((row for row in rows if not row["name"].startswith("clean")),
                 key=lambda row: row["accuracy"])
    return lowest["name"], float(lowest["accuracy"])


def run_benchmark(benchmark: Benchmark, workdir: Path) -> Outcome:
    """Run one experiment as ``digits train`` and read its metrics.json."""
    log_path = workdir / f"{benchmark.label}.log"
    log_path.unlink(missing_ok=True)
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    report_dir = _digits(["train", *benchmark.arguments, "--models", str(workdir / "models"),
                          "--reports", str(workdir / "reports")], log_path)
    seconds = time.monotonic() - started
    load_after = os.getloadavg()[0]
    if report_dir is None:
        return Outcome(benchmark, None, seconds, load_before, load_after,
                       f"failed, see {log_path}")
    metrics = json.loads((report_dir / "metrics.json").read_text())
    detail = f"{metrics['test']['errors']} of {metrics['test']['examples']} wrong"
    if "best_variant" in metrics:
        detail += f"; best variant {metrics['best_variant']}"
    if "fit_seconds" in metrics:
        detail += f"; fit {metrics['fit_seconds'] / 60:.1f} min"
    lowest = None
    if benchmark.robustness_target is not None:
        lowest = _lowest_corruption(metrics["version_dir"], workdir, log_path)
        detail += (f"; robustness failed, see {log_path}" if lowest is None else
                   f"; lowest corruption {lowest[0]} {lowest[1]:.2%}")
    return Outcome(benchmark, float(metrics["test"]["accuracy"]), seconds, load_before,
                   load_after, detail, lowest)


@click.command()
@click.option("--only", multiple=True, type=click.Choice([b.label for b in BENCHMARKS]),
              help="Run only this experiment (repeatable); default: all of them.")
@click.option("--workdir", type=click.Path(path_type=Path), default=None,
              help="Where models, reports and logs go (default: a new temporary "
                   "directory, kept and printed).")
def main(only: tuple[str, ...], workdir: Path | None) -> None:
    """Run the experiments at their full default settings and print a results table.

    DIGITS_MNIST names the data file (scripts/bench-accuracy sets it). Exits non-zero
    if any experiment misses its target.
    """
    workdir = Path(workdir or tempfile.mkdtemp(prefix="digits-bench-accuracy-"))
    workdir.mkdir(parents=True, exist_ok=True)
    chosen = [b for b in BENCHMARKS if not only or b.label in only]
    click.echo(f"# accuracy benchmark: {len(chosen)} experiments, {os.cpu_count()} CPUs, "
               f"output in {workdir}")
    header = ("| experiment | test accuracy | target | result | wall time | "
              "load avg before / after | detail |\n| --- | --- | --- | --- | --- | --- | --- |")
    outcomes = []
    for benchmark in chosen:
        click.echo(f"running {benchmark.label}: digits train {' '.join(benchmark.arguments)} "
                   f"(log: {workdir / benchmark.label}.log)", err=True)
        outcomes.append(run_benchmark(benchmark, workdir))
        click.echo(outcomes[-1].row(), err=True)
    click.echo(header)
    for outcome in outcomes:
        click.echo(outcome.row())
    if not all(outcome.passed for outcome in outcomes):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
