"""scripts/bench-workers on a tiny setting: both configurations run and the figures print."""

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from digits.jobs.workers_benchmark import main

pytestmark = pytest.mark.e2e


def test_the_workers_benchmark_prints_both_configurations_and_the_exchange_cost(
        mnist_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGITS_MNIST", str(mnist_path))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
    result = CliRunner().invoke(main, ["--experiment", "multiclass", "--epochs", "1",
                                       "--train-limit", "600"])
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if line.startswith("| ")][2:]
    assert [row.split("|")[1].strip() for row in rows] == ["1", "2"]
    for row in rows:
        assert 0.0 < float(row.split("|")[4]) <= 1.0
    assert "all-reduce of the CNN's gradients (0.74 MB)" in result.output
