"""Training jobs killed mid-export: a loop exporting a tiny model, killed on cue."""

import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

from digits.modelstore import volume
from digits.modelstore.saved_model import load_version

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


def kill_mid_export(models_root: Path, signal_number: int, delay: float) -> None:
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


def assert_every_visible_version_loads(models_root: Path) -> list[int]:
    versions = volume.list_versions(models_root, "killed")
    for version in versions:
        load_version(models_root / "killed" / str(version))  # raises if incomplete
    return versions
