"""Export: killing a job at any moment never leaves an incomplete version visible."""

import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from digits.jobs.export import DenseStackServingModule, export_model
from digits.modelstore import volume
from digits.modelstore.saved_model import load_version
from digits.v1.model_card_pb2 import ModelCard

from support.kills import assert_every_visible_version_loads, kill_mid_export


@pytest.mark.e2e
def test_sigkill_at_several_moments_never_exposes_an_incomplete_version(
        models_root: Path) -> None:
    # One export of the tiny model takes tens of milliseconds, nearly all of it inside
    # the staging directory, so these land at different points of different exports.
    caught_mid_export = 0
    for delay in (0.0, 0.1, 0.25, 0.5):
        kill_mid_export(models_root, signal.SIGKILL, delay)
        versions = assert_every_visible_version_loads(models_root)
        assert versions, "the export loop never published a version"
        # The next run's first export sweeps this; until then it shows the kill's timing.
        caught_mid_export += any(p.name.startswith(volume.STAGING_PREFIX)
                                 for p in (models_root / "killed").iterdir())
    assert caught_mid_export, "no kill landed mid-export, so nothing was proven"


@pytest.mark.e2e
def test_sigterm_removes_the_unfinished_staging_directory(models_root: Path) -> None:
    kill_mid_export(models_root, signal.SIGTERM, 0.1)
    assert_every_visible_version_loads(models_root)
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
