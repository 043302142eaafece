"""scripts/bench-workers on a tiny setting: both configurations run and the figures print."""

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from digits.jobs.workers_benchmark import main, seconds_to_accuracy

pytestmark = pytest.mark.e2e


def test_the_workers_benchmark_prints_both_configurations_and_the_exchange_cost(
        mnist_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGITS_MNIST", str(mnist_path))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
    result = CliRunner().invoke(main, ["--experiment", "multiclass", "--epochs", "1",
                                       "--train-limit", "600"])
    assert result.exit_code == 0, result.output
    assert "s to 99.0% validation" in result.output
    rows = [line for line in result.output.splitlines() if line.startswith("| ")][2:]
    assert [row.split("|")[1].strip() for row in rows] == ["1", "2"]
    for row in rows:
        assert 0.0 < float(row.split("|")[5]) <= 1.0
    assert "all-reduce of the CNN's gradients (0.74 MB)" in result.output


def test_time_to_accuracy_counts_from_joining_to_the_first_epoch_at_the_target() -> None:
    log = "\n".join([
        "2026-12-01 10:00:00,000 INFO digits.jobs.pipeline: cnn: reports in /r",
        "2026-12-01 10:00:05,500 INFO digits.jobs.distributed: worker 0 of 2 (a:1): "
        "all 2 workers joined",
        "2026-12-01 10:00:15,500 INFO digits.jobs.distributed: worker 0 of 2 (a:1), "
        "epoch 1/3: loss 0.3, accuracy 0.9, val_loss 0.05, val_accuracy 0.985, "
        "learning_rate 0.001",
        "2026-12-01 10:00:26,000 INFO digits.jobs.distributed: worker 0 of 2 (a:1), "
        "epoch 2/3: loss 0.1, accuracy 0.97, val_loss 0.03, val_accuracy 0.991, "
        "learning_rate 0.0005",
    ])
    assert seconds_to_accuracy(log, 0.99) == pytest.approx(20.5)
    assert seconds_to_accuracy(log, 0.98) == pytest.approx(10.0)
    assert seconds_to_accuracy(log, 0.995) is None
