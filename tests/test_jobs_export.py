"""Export: killing a job at any moment never leaves an incomplete version visible."""

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from digits.jobs.export import DenseStackServingModule, export_model
from digits.modelstore import volume
from digits.modelstore.saved_model import load_version
from digits.v1.model_card_pb2 import ModelCard

# Exports a tiny model over and over, announcing each start and finish on stdout.
_EXPORT_LOOP = """
import signal, sys
from pathlib import Path
import numpy as np
from digits.jobs.cli import _terminate
from digits.jobs.export import DenseStackServingModule, export_model
from digits.v1.model_card_pb2 import ModelCard

signal.signal(signal.SIGTERM, _terminate)  # as `digits train` does
generator = np.random.default_rng(0)
layers = [(generator.normal(size=(784, 64)), np.zeros(64)), (generator.normal(size=(64, 1)),
          np.zeros(1))]
module = DenseStackServingModule(layers, output="sigmoid")
for _ in range(200):
    print("start", flush=True)
    print("done", export_model(module, Path(sys.argv[1]), "killed", ModelCard(labels=["0", "1"])),
          flush=True)
"""
_STARTUP_SECONDS = 120.0


def _lines(process: subprocess.Popen[str]) -> "queue.Queue[str]":
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.strip())

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _wait_for(lines: "queue.Queue[str]", prefix: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=remaining)
        except queue.Empty:
            break
        if line.startswith(prefix):
            return line
    raise AssertionError(f"no {prefix!r} line from the export loop within {timeout} s")


def _kill_mid_export(models_root: Path, signal_number: int, delay: float) -> None:
    """Let one export finish, start the next, wait ``delay`` seconds, send the signal."""
    process = subprocess.Popen([sys.executable, "-c", _EXPORT_LOOP, str(models_root)],
                               stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        lines = _lines(process)
        _wait_for(lines, "done", _STARTUP_SECONDS)
        _wait_for(lines, "start", 60.0)
        # Deliberate, not a readiness wait: the delay picks the moment of the kill.
        time.sleep(delay)
        process.send_signal(signal_number)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _assert_every_visible_version_loads(models_root: Path) -> list[int]:
    versions = volume.list_versions(models_root, "killed")
    for version in versions:
        load_version(models_root / "killed" / str(version))  # raises if incomplete
    return versions


@pytest.mark.e2e
def test_sigkill_at_several_moments_never_exposes_an_incomplete_version(
        models_root: Path) -> None:
    # One export of the tiny model takes tens of milliseconds, nearly all of it inside
    # the staging directory, so these land at different points of different exports.
    caught_mid_export = 0
    for delay in (0.0, 0.1, 0.25, 0.5):
        _kill_mid_export(models_root, signal.SIGKILL, delay)
        versions = _assert_every_visible_version_loads(models_root)
        assert versions, "the export loop never published a version"
        # The next run's first export sweeps this; until then it shows the kill's timing.
        caught_mid_export += any(p.name.startswith(volume.STAGING_PREFIX)
                                 for p in (models_root / "killed").iterdir())
    assert caught_mid_export, "no kill landed mid-export, so nothing was proven"


@pytest.mark.e2e
def test_sigterm_removes_the_unfinished_staging_directory(models_root: Path) -> None:
    _kill_mid_export(models_root, signal.SIGTERM, 0.1)
    _assert_every_visible_version_loads(models_root)
    leftovers = [p.name for p in (models_root / "killed").iterdir()
                 if p.name.startswith(volume.STAGING_PREFIX)]
    assert leftovers == []


def test_next_export_sweeps_a_killed_jobs_staging_directory(models_root: Path) -> None:
    # A staging directory as a SIGKILLed job on this host leaves it (its pid is gone).
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    abandoned = (models_root / "m" /
                 f"{volume.STAGING_PREFIX}{socket.gethostname()}-{dead}-abc")
    abandoned.mkdir(parents=True)
    (abandoned / "saved_model.pb").write_bytes(b"half")
    module = DenseStackServingModule([(np.ones((784, 1)), np.zeros(1))], output="sigmoid")
    version_dir = export_model(module, models_root, "m", ModelCard(labels=["0", "1"]),
                               extra_files={"notes.txt": b"hello"})
    assert not abandoned.exists()
    assert (version_dir / "notes.txt").read_bytes() == b"hello"
    assert "notes.txt" in load_version(version_dir).card.file_sha256
