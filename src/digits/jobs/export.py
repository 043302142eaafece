"""Export trained models as versioned SavedModels with the serving signature and a card.

Every model, Keras or NumPy, is wrapped in a ``tf.Module`` whose ``serve`` function takes
uint8 [N, 28, 28] pixels, scales them to [0, 1] inside the graph and returns float32
[N, classes] probabilities, so training and serving never disagree on preprocessing.
"""

import platform
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

import digits
from digits.modelstore import volume
from digits.modelstore.signature import (
    IMAGE_SIZE,
    INPUT_NAME,
    OUTPUT_NAME,
    PREPROCESSING,
    SIGNATURE_KEY,
    input_spec,
    output_spec,
)
from digits.v1.model_card_pb2 import ModelCard

_PIXELS_SPEC = tf.TensorSpec([None, IMAGE_SIZE, IMAGE_SIZE], tf.uint8, name=INPUT_NAME)


def _two_class(probability_of_one: tf.Tensor) -> tf.Tensor:
    """[N, 1] sigmoid output -> [N, 2] probabilities of (class 0, class 1)."""
    return tf.concat([1.0 - probability_of_one, probability_of_one], axis=1)


class KerasServingModule(tf.Module):
    """Serving wrapper of a Keras model that takes float32 [N, 28, 28] in [0, 1]."""

    def __init__(self, model: Any, sigmoid_output: bool) -> None:
        super().__init__(name="digits_keras")
        self.model = model
        self._sigmoid_output = sigmoid_output

    @tf.function(input_signature=[_PIXELS_SPEC])
    def serve(self, pixels: tf.Tensor) -> dict[str, tf.Tensor]:
        scaled = tf.cast(pixels, tf.float32) / 255.0
        probabilities = self.model(scaled, training=False)
        if self._sigmoid_output:
            probabilities = _two_class(probabilities)
        return {OUTPUT_NAME: tf.cast(probabilities, tf.float32)}


class DenseStackServingModule(tf.Module):
    """Serving wrapper of a NumPy dense network: ReLU hidden layers, sigmoid or softmax out."""

    def __init__(self, layers: Sequence[tuple[np.ndarray, np.ndarray]], output: str) -> None:
        super().__init__(name="digits_numpy")
        if output not in ("sigmoid", "softmax"):
            raise ValueError(f"output must be 'sigmoid' or 'softmax', got {output!r}")
        self.weights = [tf.Variable(w.astype(np.float32), trainable=False) for w, _ in layers]
        self.biases = [tf.Variable(b.astype(np.float32), trainable=False) for _, b in layers]
        self._output = output

    @tf.function(input_signature=[_PIXELS_SPEC])
    def serve(self, pixels: tf.Tensor) -> dict[str, tf.Tensor]:
        activations = tf.reshape(tf.cast(pixels, tf.float32) / 255.0, [-1, IMAGE_SIZE**2])
        last = len(self.weights) - 1
        for index, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            activations = tf.matmul(activations, weight) + bias
            if index < last:
                activations = tf.nn.relu(activations)
        if self._output == "sigmoid":
            return {OUTPUT_NAME: _two_class(tf.sigmoid(activations))}
        return {OUTPUT_NAME: tf.nn.softmax(activations)}


def framework_versions() -> dict[str, str]:
    """Versions of the libraries that produced a model."""
    return {
        "tensorflow": tf.__version__,
        "keras": _keras_version(),
        "numpy": np.__version__,
        "python": platform.python_version(),
        "digits": digits.__version__,
    }


def _keras_version() -> str:
    try:
        import keras

        return str(keras.__version__)
    except ImportError:  # pragma: no cover - keras ships with tensorflow
        return "unavailable"


def export_model(module: tf.Module, models_root: Path, name: str, card: ModelCard,
                 extra_files: Mapping[str, bytes] | None = None) -> Path:
    """Save ``module`` as the next version of ``name`` under ``models_root``, atomically.

    ``card`` must carry the labels and whatever the job knows (experiment, config,
    dataset, test metrics); signature specs, framework versions, creation time, file
    digests, name and version are filled in here. ``extra_files`` (relative path ->
    contents, e.g. the training history) are written beside the SavedModel and listed
    in the card like every other file. Returns the version directory.
    """
    if not card.labels:
        raise ValueError("the model card needs the class labels before export")
    card.input.CopyFrom(input_spec())
    card.output.CopyFrom(output_spec(len(card.labels)))
    card.preprocessing = card.preprocessing or PREPROCESSING
    card.framework_versions.clear()
    card.framework_versions.update(framework_versions())
    card.created.FromDatetime(datetime.now(UTC))
    with volume.staging_dir(models_root, name) as staging:
        tf.saved_model.save(module, str(staging), signatures={SIGNATURE_KEY: module.serve})
        for relative_path, contents in (extra_files or {}).items():
            (staging / relative_path).parent.mkdir(parents=True, exist_ok=True)
            (staging / relative_path).write_bytes(contents)
        return volume.publish(staging, models_root, name, card)
