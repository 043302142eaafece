"""End to end: a model trained on real MNIST by the jobs, served, classified over gRPC."""

import asyncio
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from digits.modelstore.saved_model import load_version
from digits.service.client import ClassifierClient

from support.servers import loopback_settings, running_server, wait_serving

TEST_IMAGES = 1000
ENCODED_IMAGES = 200


def _as_scanned_file(digit: np.ndarray, index: int) -> bytes:
    """A test digit as a user might send it: dark ink on white, enlarged, PNG or JPEG."""
    scale = 4 + index % 6
    image = Image.fromarray(255 - digit).resize((28 * scale, 28 * scale),
                                                Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, "PNG" if index % 2 else "JPEG")
    return buffer.getvalue()


@pytest.mark.e2e
async def test_trained_model_served_over_grpc_matches_its_in_process_accuracy(
        mnist_path: Path, models_root: Path, tmp_path: Path) -> None:
    train = [sys.executable, "-m", "digits", "train", "multiclass", "--data", str(mnist_path),
             "--models", str(models_root), "--reports", str(tmp_path / "reports"),
             "--train-limit", "6000", "--epochs", "2", "--seed", "0"]
    trained = await asyncio.to_thread(
        subprocess.run, train, capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert trained.returncode == 0, trained.stdout + trained.stderr
    version_dir = models_root / "mnist" / "1"

    data = np.load(mnist_path)
    pixels, labels = data["x_test"][:TEST_IMAGES], data["y_test"][:TEST_IMAGES]
    in_process = load_version(version_dir)
    in_process_labels = np.array(in_process.labels)[in_process.predict(pixels).argmax(axis=1)]
    in_process_accuracy = float(np.mean(in_process_labels.astype(int) == labels))

    async with running_server(loopback_settings(models_root)) as running:
        await wait_serving(running, "mnist")

        def classify() -> tuple[list[str], list[str], int]:
            with ClassifierClient(running.target, timeout=60) as client:
                raw = client.classify_pixels(pixels)
                files = [_as_scanned_file(d, i) for i, d in enumerate(pixels[:ENCODED_IMAGES])]
                encoded = client.classify_encoded(files)
            return ([p.label for p in raw.predictions], [p.label for p in encoded.predictions],
                    raw.version)

        served_labels, encoded_labels, version = await asyncio.to_thread(classify)

    served_accuracy = float(np.mean(np.array(served_labels).astype(int) == labels))
    assert version == 1
    assert served_accuracy == in_process_accuracy
    assert served_accuracy > 0.85  # a real model, not a constant
    # Enlarged, inverted PNG/JPEG files converted the MNIST way keep most of the accuracy.
    encoded_accuracy = float(np.mean(
        np.array(encoded_labels).astype(int) == labels[:ENCODED_IMAGES]))
    raw_accuracy_on_same = float(np.mean(
        np.array(served_labels[:ENCODED_IMAGES]).astype(int) == labels[:ENCODED_IMAGES]))
    assert encoded_accuracy >= raw_accuracy_on_same - 0.05, (encoded_accuracy,
                                                             raw_accuracy_on_same)
