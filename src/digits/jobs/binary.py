"""Binary experiment: 0 versus 1 with a from-scratch NumPy network, or its Keras twin.

Both implementations share one architecture (784 inputs, ReLU hidden layers, one sigmoid
unit), loss (binary cross-entropy), optimiser (plain mini-batch SGD), initialisation (He
normal) and budget, so their results can be compared directly.
"""

import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from digits.jobs import numpy_net, pipeline
from digits.jobs.numpy_net import EpochCallback
from digits.jobs.pipeline import JobResult, JobSettings, PreparedData, scaled
from digits.jobs.tracking import RunLog

log = logging.getLogger(__name__)

EXPERIMENT = "binary"
DIGITS = (0, 1)
IMPLEMENTATIONS = ("numpy", "keras")
DEFAULT_NAME = "mnist-binary"


@dataclass(frozen=True)
class Hyperparameters:
    """Everything that shapes the model and its training (logged and put on the card)."""

    implementation: str = "numpy"
    hidden_units: tuple[int, ...] = (64,)
    learning_rate: float = 0.1
    batch_size: int = 32
    epochs: int = 10


def run(settings: JobSettings, hyperparameters: Hyperparameters,
        on_epoch: EpochCallback | None = None) -> JobResult:
    """Train the chosen implementation on 0s and 1s, evaluate it, export it.

    ``on_epoch(epoch, figures)`` is called after each epoch with its loss and accuracy
    figures, for either implementation (the notebook draws a live loss curve with it).
    """
    if hyperparameters.implementation not in IMPLEMENTATIONS:
        raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, "
                         f"got {hyperparameters.implementation!r}")
    job = pipeline.start(EXPERIMENT, settings, hyperparameters)
    prepared = pipeline.prepare_data(settings, DIGITS)
    pipeline.seed_everything(settings.seed)

    if hyperparameters.implementation == "numpy":
        model, module, history = _train_numpy(prepared, hyperparameters, settings.seed,
                                              _logging_too(on_epoch, job.log,
                                                           hyperparameters.learning_rate))
    else:
        model, module, history = _train_keras(prepared, hyperparameters, on_epoch, job.log)

    architecture = "-".join(str(units) for units in (784, *hyperparameters.hidden_units, 1))
    return pipeline.finish(
        job, prepared, module, history, model=model,
        description=(f"0 vs 1, {hyperparameters.implementation} network {architecture} "
                     "(ReLU hidden, sigmoid output), binary cross-entropy, mini-batch SGD"),
    )


def _logging_too(on_epoch: EpochCallback | None, run_log: RunLog,
                 learning_rate: float) -> EpochCallback:
    """``on_epoch`` that also logs the NumPy network's epoch to TensorBoard."""
    def both(epoch: int, figures: Mapping[str, float]) -> None:
        run_log.epoch(epoch, {**figures, "learning_rate": learning_rate})
        if on_epoch is not None:
            on_epoch(epoch, figures)
    return both


def _flat(images: Any) -> Any:
    return scaled(images).reshape(len(images), -1)


def _train_numpy(prepared: PreparedData, hyperparameters: Hyperparameters, seed: int,
                 on_epoch: EpochCallback | None) -> tuple[Any, Any, dict[str, list[float]]]:
    from digits.jobs.export import DenseStackServingModule

    network = numpy_net.NumpyNetwork.initialise((784, *hyperparameters.hidden_units, 1), seed)
    history = numpy_net.train(
        network,
        (_flat(prepared.train.images), prepared.train.labels.astype(float)),
        (_flat(prepared.validation.images), prepared.validation.labels.astype(float)),
        epochs=hyperparameters.epochs, batch_size=hyperparameters.batch_size,
        learning_rate=hyperparameters.learning_rate, seed=seed,
        progress=sys.stderr.isatty(),  # a bar on terminals; the epoch lines below in logs
        on_epoch=on_epoch,
    )
    for epoch, (loss, val_accuracy) in enumerate(
            zip(history["loss"], history["val_accuracy"], strict=True), start=1):
        log.info("epoch %d: loss %.4f, validation accuracy %.4f", epoch, loss, val_accuracy)
    return network, DenseStackServingModule(network.layers(), output="sigmoid"), history


def build_keras_twin(hidden_units: tuple[int, ...]) -> Any:
    """The Keras model with the NumPy network's architecture: [N, 28, 28] -> [N, 1]."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=(28, 28), name="pixels")
    hidden = layers.Flatten()(inputs)
    for units in hidden_units:
        hidden = layers.Dense(units, activation="relu", kernel_initializer="he_normal")(hidden)
    outputs = layers.Dense(1, activation="sigmoid", kernel_initializer="he_normal")(hidden)
    return keras.Model(inputs, outputs, name="binary_dense")


def _train_keras(prepared: PreparedData, hyperparameters: Hyperparameters,
                 on_epoch: EpochCallback | None,
                 run_log: RunLog) -> tuple[Any, Any, dict[str, list[float]]]:
    import keras

    from digits.jobs import keras_training
    from digits.jobs.export import KerasServingModule

    model = build_keras_twin(hyperparameters.hidden_units)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=hyperparameters.learning_rate),
                  loss="binary_crossentropy", metrics=["accuracy"])
    # Keras counts epochs from 0 and passes the same keys the NumPy history has.
    callbacks = [] if on_epoch is None else [keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: on_epoch(epoch + 1, logs))]
    history, _ = keras_training.fit(model, prepared.train, prepared.validation,
                                    epochs=hyperparameters.epochs,
                                    batch_size=hyperparameters.batch_size, targets="binary",
                                    callbacks=callbacks, run_log=run_log)
    return model, KerasServingModule(model, sigmoid_output=True), history
