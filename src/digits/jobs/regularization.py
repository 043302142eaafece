"""Regularisation experiment: baseline vs L2 vs Dropout vs BatchNorm vs all three.

Every variant has the same dense architecture, optimiser and epoch budget and trains on
the same small training subset (small enough to overfit), once per seed. The variant with
the best mean validation accuracy wins; its best-validating run is exported. Test
accuracy is measured for the report only, never used to choose.
"""

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from digits.jobs import pipeline
from digits.jobs.data import Split
from digits.jobs.pipeline import JobResult, JobSettings
from digits.jobs.tracking import RunLog, flat_hyperparameters

log = logging.getLogger(__name__)

EXPERIMENT = "regularization"
DEFAULT_NAME = "mnist"
# Keras's default (0.99) leaves the inference statistics near their initial values for
# the first few hundred steps; 0.9 tracks the data within tens of steps, so short runs
# (tests, small subsets) export a usable model too.
BATCHNORM_MOMENTUM = 0.9
VARIANTS = ("baseline", "l2", "dropout", "batchnorm", "all")


@dataclass(frozen=True)
class Hyperparameters:
    """Everything that shapes the models and their training (logged and put on the card)."""

    subset_size: int = 2000
    seeds: int = 3
    hidden_units: tuple[int, ...] = (256, 256)
    l2: float = 1e-3
    dropout_rate: float = 0.3
    learning_rate: float = 1e-3
    batch_size: int = 64
    epochs: int = 40


@dataclass
class VariantRun:
    """One trained variant for one seed, with its accuracies in inference mode."""

    variant: str
    seed: int
    history: dict[str, list[float]]
    train_accuracy: float
    validation_accuracy: float
    test_accuracy: float
    model: Any

    @property
    def gap(self) -> float:
        """Generalisation gap: training minus test accuracy."""
        return self.train_accuracy - self.test_accuracy


def run(settings: JobSettings, hyperparameters: Hyperparameters) -> JobResult:
    """Train every variant for every seed, report them side by side, export the best."""
    if hyperparameters.seeds < 1 or hyperparameters.subset_size < 1:
        raise ValueError("seeds and subset_size must be at least 1")
    job = pipeline.start(EXPERIMENT, settings, hyperparameters)
    prepared = pipeline.prepare_data(settings)
    # TensorFlow loads only now, so bad arguments and data fail within a second.
    from digits.jobs import regularization_report
    from digits.jobs.export import KerasServingModule

    runs = []
    for seed in range(settings.seed, settings.seed + hyperparameters.seeds):
        subset = _training_subset(prepared.train, hyperparameters.subset_size, seed)
        for variant in VARIANTS:
            log.info("variant %s, seed %d, %d training images", variant, seed, len(subset))
            runs.append(_train_variant(variant, seed, subset, prepared, hyperparameters,
                                       job.log.child(f"{variant}-seed{seed}")))

    summary = regularization_report.summarize(runs, VARIANTS)
    best_variant = max(VARIANTS, key=lambda variant: summary[variant]["validation"]["mean"])
    best_run = max((r for r in runs if r.variant == best_variant),
                   key=lambda r: r.validation_accuracy)
    regularization_report.write(job.report_dir, runs, summary, VARIANTS, best_variant,
                                hyperparameters)

    # The card describes the exported run: its own seed's subset is its training data.
    exported_data = dataclasses.replace(
        prepared, train=_training_subset(prepared.train, hyperparameters.subset_size,
                                         best_run.seed))
    return pipeline.finish(
        job, exported_data, KerasServingModule(best_run.model, sigmoid_output=False),
        best_run.history, model=best_run.model,
        description=(f"regularisation study winner: {best_variant} (seed {best_run.seed}), "
                     f"dense {'-'.join(map(str, hyperparameters.hidden_units))}, trained on "
                     f"{len(exported_data.train)} images"),
        extra_metrics={"best_variant": best_variant, "best_seed": best_run.seed,
                       "variants": summary},
    )


def _training_subset(train: Split, size: int, seed: int) -> Split:
    """``size`` training images drawn with ``seed`` (all of them when there are fewer)."""
    if size >= len(train):
        log.warning("subset_size %d >= %d training images: using them all", size, len(train))
        return train
    generator = np.random.default_rng(seed)
    return train.subset(np.sort(generator.choice(len(train), size=size, replace=False)))


def _train_variant(variant: str, seed: int, subset: Split, prepared: pipeline.PreparedData,
                   hyperparameters: Hyperparameters, run_log: RunLog) -> VariantRun:
    import keras

    from digits.jobs import keras_training

    # Reseeding per run makes each run's initialisation and shuffling independent of
    # the order in which the variants are trained.
    pipeline.seed_everything(seed)
    model = build_model(variant, hyperparameters)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=hyperparameters.learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history, _ = keras_training.fit(model, subset, prepared.validation,
                                    epochs=hyperparameters.epochs,
                                    batch_size=hyperparameters.batch_size, run_log=run_log)
    result = VariantRun(
        variant=variant, seed=seed, history=history,
        train_accuracy=keras_training.accuracy(model, subset),
        validation_accuracy=keras_training.accuracy(model, prepared.validation),
        test_accuracy=keras_training.accuracy(model, prepared.test),
        model=model,
    )
    # One HParams session per model of the study, so TensorBoard compares the variants.
    run_log.finish({"variant": variant, "seed": seed, "training_images": len(subset),
                    **flat_hyperparameters(dataclasses.asdict(hyperparameters))},
                   {"accuracy": result.test_accuracy, "train_accuracy": result.train_accuracy,
                    "gap": result.gap}, step=hyperparameters.epochs)
    return result


def build_model(variant: str, hyperparameters: Hyperparameters) -> Any:
    """The shared dense architecture with ``variant``'s regularisation: [N, 28, 28] -> [N, 10]."""
    import keras
    from keras import layers

    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    use_l2 = variant in ("l2", "all")
    use_dropout = variant in ("dropout", "all")
    use_batchnorm = variant in ("batchnorm", "all")
    regularizer = keras.regularizers.L2(hyperparameters.l2) if use_l2 else None

    inputs = keras.Input(shape=(28, 28), name="pixels")
    hidden = layers.Flatten()(inputs)
    for units in hyperparameters.hidden_units:
        # With BatchNorm the layer's bias is redundant (BatchNorm adds its own shift).
        hidden = layers.Dense(units, use_bias=not use_batchnorm,
                              kernel_regularizer=regularizer)(hidden)
        if use_batchnorm:
            hidden = layers.BatchNormalization(momentum=BATCHNORM_MOMENTUM)(hidden)
        hidden = layers.ReLU()(hidden)
        if use_dropout:
            hidden = layers.Dropout(hyperparameters.dropout_rate)(hidden)
    outputs = layers.Dense(10, activation="softmax", kernel_regularizer=regularizer)(hidden)
    return keras.Model(inputs, outputs, name=f"regularization_{variant}")
