"""`scripts/bench-accuracy`'s runner on a tiny run: the table row comes from the real
`digits train` and `digits evaluate --robustness` processes, and the targets decide."""

import dataclasses
from pathlib import Path

import pytest

from digits.jobs.accuracy_benchmark import BENCHMARKS, Benchmark, run_benchmark
from digits.jobs.corruptions import CORRUPTIONS


def test_a_robustness_target_is_checked_on_the_weakest_corruption(
        tmp_path: Path, mnist_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGITS_MNIST", str(mnist_path))
    tiny = Benchmark("tiny", ("cnn", "--recipe", "robust", "--name", "tiny", "--epochs", "1",
                              "--train-limit", "300"), target=0.0, robustness_target=0.0)
    outcome = run_benchmark(tiny, tmp_path)
    assert outcome.lowest is not None, (tmp_path / "tiny.log").read_text()[-2000:]
    name, accuracy = outcome.lowest
    assert name in {c.name for c in CORRUPTIONS} and 0 <= accuracy <= 1
    assert outcome.passed and f"lowest corruption {name}" in outcome.row()
    stricter = dataclasses.replace(tiny, robustness_target=accuracy + 0.01)
    missed = dataclasses.replace(outcome, benchmark=stricter)
    assert not missed.passed and "every corruption >= " in missed.row()


def test_a_failed_run_fails_its_row(tmp_path: Path, mnist_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGITS_MNIST", str(tmp_path / "missing.npz"))
    outcome = run_benchmark(Benchmark("broken", ("multiclass",), target=0.5), tmp_path)
    assert outcome.accuracy is None and not outcome.passed
    assert "failed, see" in outcome.row()


def test_the_robust_recipe_is_benchmarked_against_every_target() -> None:
    robust = next(b for b in BENCHMARKS if b.label == "cnn-robust")
    assert "robust" in robust.arguments
    assert robust.target == 0.994 and robust.robustness_target == 0.97
    assert robust.max_seconds is not None
