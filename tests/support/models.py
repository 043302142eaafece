"""Tiny real SavedModels for the service tests, and model volumes to put them in.

The models are exported with the jobs' own ``export_model``, once per session, into a
template volume; tests copy a template version into their own volume with an atomic
rename, as a training job would publish it.
"""

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digits.modelstore.card import CARD_FILENAME

LABELS = [str(digit) for digit in range(10)]
# A model call of the "slow" template takes at least this long (a tf.data sleep, no CPU).
SLOW_MODEL_SECONDS = 0.5


@dataclass(frozen=True)
class Templates:
    """Version directories of the session's tiny models."""

    dense_a: Path
    dense_b: Path
    slow: Path
    weights_a: tuple[np.ndarray, np.ndarray]
    weights_b: tuple[np.ndarray, np.ndarray]


def export_templates(root: Path) -> Templates:
    """Export the tiny models (each well under a second) with the jobs' export code."""
    import tensorflow as tf
    from tensorflow.python.data.experimental.ops import testing as tf_data_testing

    from digits.jobs.export import DenseStackServingModule, export_model
    from digits.v1.model_card_pb2 import ModelCard

    def weights(seed: int) -> tuple[np.ndarray, np.ndarray]:
        generator = np.random.default_rng(seed)
        return (generator.normal(0, 0.05, (784, 10)).astype(np.float32),
                generator.normal(0, 0.5, 10).astype(np.float32))

    class SlowModule(tf.Module):
        """The dense model behind a sleep, so requests stay in flight without using CPU.

        tf.data's sleep is the one sleep TensorFlow can save in a graph.
        """

        def __init__(self, dense: DenseStackServingModule) -> None:
            super().__init__()
            self.dense = dense

        @tf.function(input_signature=[
            tf.TensorSpec([None, 28, 28], tf.uint8, name="pixels")])
        def serve(self, pixels: tf.Tensor) -> dict[str, tf.Tensor]:
            # The sleep applies to each element fetched and to the end-of-data fetch.
            delay = tf.data.Dataset.range(1).apply(
                tf_data_testing.sleep(int(SLOW_MODEL_SECONDS / 2 * 1e6)))
            for _ in delay:
                pass
            return self.dense.serve(pixels)

    weights_a, weights_b = weights(1), weights(2)
    dense_a = export_model(DenseStackServingModule([weights_a], "softmax"), root, "a",
                           ModelCard(labels=LABELS, experiment="test"))
    dense_b = export_model(DenseStackServingModule([weights_b], "softmax"), root, "b",
                           ModelCard(labels=LABELS, experiment="test"))
    slow = export_model(SlowModule(DenseStackServingModule([weights_a], "softmax")), root,
                        "slow", ModelCard(labels=LABELS, experiment="test"))
    return Templates(dense_a, dense_b, slow, weights_a, weights_b)


def expected_probabilities(weights: tuple[np.ndarray, np.ndarray],
                           pixels: np.ndarray) -> np.ndarray:
    """What the dense templates compute, in NumPy: softmax(pixels / 255 @ W + b)."""
    logits = pixels.reshape(len(pixels), -1).astype(np.float64) / 255.0 @ weights[0] + weights[1]
    exponentials = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exponentials / exponentials.sum(axis=1, keepdims=True)


def install(template: Path, root: Path, name: str, version: int) -> Path:
    """Publish a copy of ``template`` as ``<root>/<name>/<version>`` atomically."""
    model_dir = root / name
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = model_dir / f".staging-test-{version}"
    shutil.copytree(template, staging)
    target = model_dir / str(version)
    os.rename(staging, target)
    return target


def corrupt_copy(template: Path, root: Path, name: str, version: int, how: str) -> Path:
    """Publish a broken version: 'sha256' (a file changed after the card was written),
    'savedmodel' (garbage graph with a card that matches it) or 'card' (garbled card)."""
    from digits.modelstore.card import file_digests, read_card, write_card

    model_dir = root / name
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = model_dir / f".staging-corrupt-{version}"
    shutil.copytree(template, staging)
    if how == "sha256":
        (staging / "saved_model.pb").write_bytes(b"tampered")
    elif how == "savedmodel":
        (staging / "saved_model.pb").write_bytes(b"not a protobuf")
        card = read_card(staging)
        card.file_sha256.clear()
        card.file_sha256.update(file_digests(staging))
        write_card(staging, card)
    elif how == "card":
        (staging / CARD_FILENAME).write_text("{not json")
    else:
        raise ValueError(f"unknown corruption {how!r}")
    target = model_dir / str(version)
    os.rename(staging, target)
    return target
