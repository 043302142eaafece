"""Multi-worker training: real worker processes on loopback, through the real command.

Two workers train a small model for a few steps: their copies end identical, the chief
alone exports a servable version, and a rerun gives the same metrics. A worker that dies
makes the other fail with a message within the timeout; a worker whose peer never comes
fails the same way instead of waiting forever.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from google.protobuf import json_format

from digits.jobs import reports
from digits.modelstore import volume
from digits.modelstore.saved_model import load_version

from support.network import free_ports

pytestmark = pytest.mark.e2e

TRAINING = ["--train-limit", "1200", "--epochs", "2", "--seed", "3"]
FINGERPRINT = re.compile(r"weights sha256 ([0-9a-f]{64})")


def _start(tmp_path: Path, mnist_path: Path, index: int, workers: str, *extra: str,
           experiment: str = "multiclass", tmpdir: Path | None = None
           ) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "digits", "train", experiment, "--data", str(mnist_path),
               "--models", str(tmp_path / f"models{index}"),
               "--reports", str(tmp_path / f"reports{index}"), "--workers", workers,
               "--worker-index", str(index), *extra]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
                                            **({"TMPDIR": str(tmpdir)} if tmpdir else {})})


def _workers(count: int) -> str:
    return ",".join(f"127.0.0.1:{port}" for port in free_ports(count))


def _train_two(tmp_path: Path, mnist_path: Path, *extra: str, workers: str = "",
               experiment: str = "multiclass") -> tuple[str, str]:
    """Outputs of the chief and the other worker, both of which must succeed."""
    workers = workers or _workers(2)
    processes = [_start(tmp_path, mnist_path, index, workers, *TRAINING, *extra,
                        experiment=experiment) for index in (0, 1)]
    outputs = [process.communicate(timeout=600)[0] for process in processes]
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output[-3000:]
    return outputs[0], outputs[1]


@pytest.mark.parametrize("experiment", ["multiclass", "cnn"])
def test_two_workers_train_identical_copies_and_the_chief_alone_exports(
        tmp_path: Path, mnist_path: Path, experiment: str) -> None:
    workers = _workers(2)
    # The CNN needs a few more steps than the dense network to beat chance clearly.
    more = ["--train-limit", "3000"] if experiment == "cnn" else []
    chief, other = _train_two(tmp_path, mnist_path, *more, workers=workers,
                              experiment=experiment)
    assert FINGERPRINT.findall(chief) == FINGERPRINT.findall(other)
    assert len(FINGERPRINT.findall(chief)) == 1
    assert "worker 1 of 2" in other and "worker 0 (127.0.0.1:" in other

    version_dir = tmp_path / "models0" / "mnist" / "1"
    model = load_version(version_dir)
    config = json_format.MessageToDict(model.card.training_config)
    assert config["settings"]["cluster"] == {"workers": workers.split(","), "index": 0}
    metrics = json.loads((Path(chief.split("reports in ")[-1].split()[0])
                          / reports.METRICS_FILENAME).read_text())
    assert metrics["test"]["accuracy"] > 0.6
    # The other worker exported nothing and kept no reports.
    assert not (tmp_path / "models1").exists() or not volume.list_versions(
        tmp_path / "models1", "mnist")
    assert not (tmp_path / "reports1").exists()


def test_same_seed_and_worker_count_give_the_same_metrics(tmp_path: Path,
                                                          mnist_path: Path) -> None:
    runs = []
    for attempt in ("first", "second"):
        chief, _ = _train_two(tmp_path / attempt, mnist_path)
        report_dir = Path(chief.split("reports in ")[-1].split()[0])
        runs.append(json.loads((report_dir / reports.METRICS_FILENAME).read_text()))
    assert runs[0]["test"] == runs[1]["test"]
    assert runs[0]["validation_accuracy"] == runs[1]["validation_accuracy"]


def test_a_killed_worker_makes_the_other_fail_with_a_message(tmp_path: Path,
                                                            mnist_path: Path) -> None:
    workers = _workers(2)
    long_run = ["--train-limit", "6000", "--epochs", "200", "--worker-timeout", "30"]
    chief = _start(tmp_path, mnist_path, 0, workers, *long_run)
    other = _start(tmp_path, mnist_path, 1, workers, *long_run)
    try:
        assert other.stdout is not None
        for line in other.stdout:  # until training is under way
            if "epoch 1/200" in line:
                break
        else:
            pytest.fail(f"worker 1 exited {other.wait()} before its first epoch")
        other.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        output = chief.communicate(timeout=120)[0]
        waited = time.monotonic() - killed
    finally:
        for process in (chief, other):
            if process.poll() is None:
                process.kill()
            process.wait()
    assert chief.returncode == 1, output[-3000:]
    assert "training stopped because another worker failed or stopped answering" in output
    assert "nothing was exported" in output
    assert "task:1" in output  # the message names the worker that failed
    assert waited < 60
    assert not volume.list_versions(tmp_path / "models0", "mnist")


@pytest.mark.parametrize("index", [0, 1])
def test_a_worker_whose_peer_never_comes_gives_up_with_a_message(
        tmp_path: Path, mnist_path: Path, index: int) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    started = time.monotonic()
    alone = _start(tmp_path, mnist_path, index, _workers(2), *TRAINING, "--worker-timeout",
                   "5", tmpdir=scratch)
    output = alone.communicate(timeout=120)[0]
    # Its watchdog ends it: TensorFlow's wait holds the interpreter, so nothing else can.
    assert alone.returncode == -signal.SIGKILL, output[-3000:]
    assert "not every worker joined within 5 s" in output
    assert time.monotonic() - started < 60
    # Nothing is left behind: no export, and a non-chief's scratch reports are removed.
    assert not list(tmp_path.glob(f"models{index}/**/saved_model.pb"))
    assert not list(scratch.glob("digits-*"))
