"""Multiclass experiment: all ten digits with a Keras dense network, softmax and Adam.

The shape follows Keras's own MNIST MLP example (two hidden layers of 512 with dropout,
98.40% test accuracy there); Adam with a cosine-decaying step size replaces RMSprop.
"""

from dataclasses import dataclass
from typing import Any

from digits.jobs import pipeline
from digits.jobs.pipeline import JobResult, JobSettings

EXPERIMENT = "multiclass"
DEFAULT_NAME = "mnist"


@dataclass(frozen=True)
class Hyperparameters:
    """Everything that shapes the model and its training (logged and put on the card)."""

    hidden_units: tuple[int, ...] = (512, 512)
    dropout_rate: float = 0.2
    learning_rate: float = 1e-3
    batch_size: int = 128
    epochs: int = 20


def run(settings: JobSettings, hyperparameters: Hyperparameters) -> JobResult:
    """Train the dense softmax network on all digits, evaluate it, export it."""
    job = pipeline.start(EXPERIMENT, settings, hyperparameters)
    prepared = pipeline.prepare_data(settings)
    pipeline.seed_everything(settings.seed)
    # TensorFlow loads only now, so bad arguments and data fail within a second.
    import keras

    from digits.jobs import distributed, keras_training
    from digits.jobs.distributed import Trainable
    from digits.jobs.export import KerasServingModule

    def build() -> tuple[Any, Trainable]:
        model = build_model(hyperparameters.hidden_units, hyperparameters.dropout_rate)
        steps = hyperparameters.epochs * -(-len(prepared.train) // hyperparameters.batch_size)
        schedule = keras.optimizers.schedules.CosineDecay(hyperparameters.learning_rate, steps)
        return model, Trainable(model, keras.optimizers.Adam(learning_rate=schedule))

    if settings.cluster is None:
        model, trainable = build()
        model.compile(optimizer=trainable.optimizer, loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        history, fit_seconds = keras_training.fit(
            model, prepared.train, prepared.validation,
            epochs=hyperparameters.epochs, batch_size=hyperparameters.batch_size,
            run_log=job.log)
    else:
        model, history, fit_seconds = distributed.fit_on_workers(
            job, build,
            lambda: build_model(hyperparameters.hidden_units, hyperparameters.dropout_rate),
            prepared.train, prepared.validation,
            epochs=hyperparameters.epochs, batch_size=hyperparameters.batch_size)

    return pipeline.finish(
        job, prepared, KerasServingModule(model, sigmoid_output=False), history, model=model,
        description=(f"dense network {'-'.join(map(str, hyperparameters.hidden_units))} "
                     "(ReLU, dropout), softmax over 10 digits, Adam"),
        extra_metrics={"fit_seconds": round(fit_seconds, 1)},
    )


def build_model(hidden_units: tuple[int, ...], dropout_rate: float) -> Any:
    """Dense ReLU layers with dropout, softmax over ten digits: [N, 28, 28] -> [N, 10]."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=(28, 28), name="pixels")
    hidden = layers.Flatten()(inputs)
    for units in hidden_units:
        hidden = layers.Dense(units, activation="relu")(hidden)
        hidden = layers.Dropout(dropout_rate)(hidden)
    outputs = layers.Dense(10, activation="softmax")(hidden)
    return keras.Model(inputs, outputs, name="multiclass_dense")
