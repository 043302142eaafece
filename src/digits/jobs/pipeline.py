"""The steps every training job shares: settings, checks, seeding, data, finishing a run.

An experiment module reads top to bottom: its hyper-parameters, ``start`` (checks and
config log), ``prepare_data``, ``seed_everything``, building and training its model,
then ``finish`` (test evaluation through the exported graph, reports, export).
"""

import dataclasses
import functools
import json
import logging
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from digits.jobs import data, version_contents
from digits.jobs.cluster import Cluster
from digits.jobs.scoring import Scores, score
from digits.jobs.tracking import TENSORBOARD_DIRNAME, RunLog, run_hyperparameters
from digits.modelstore import volume
from digits.modelstore.names import validate_model_name

log = logging.getLogger(__name__)

ALL_DIGITS = tuple(range(10))
# 5,000 of MNIST's 60,000 training images: the customary validation size.
VALIDATION_FRACTION = 1 / 12
# Images per call when running the serving graph over the test set (bounds memory).
_PREDICT_CHUNK = 1000


class JobError(Exception):
    """A job cannot run as asked (bad data, unusable directories); the message says why."""


@dataclass(frozen=True)
class JobSettings:
    """Where a job reads and writes, and what it may use; the same for every experiment."""

    data: Path | None  # mnist.npz; None means Keras's download
    models: Path  # the model volume root
    reports: Path  # reports root; each run gets its own directory below it
    name: str  # model name to export as
    seed: int = 0
    train_limit: int | None = None  # use only the first N training images
    data_check: str = "canonical"  # see digits.jobs.data
    cluster: Cluster | None = None  # None: train in this process alone
    worker_timeout: float = 120.0  # seconds to wait for every worker, at start and per step


@dataclass(frozen=True)
class PreparedData:
    """The verified arrays and the three splits a job uses (test only for the final figures)."""

    mnist: data.Mnist
    train: data.Split
    validation: data.Split
    test: data.Split
    digits: tuple[int, ...]

    @property
    def labels(self) -> list[str]:
        """Class label of each output column."""
        return [str(digit) for digit in self.digits]


@dataclass
class Run:
    """One job run: what it is, where its reports go, and the configuration it logged."""

    experiment: str
    settings: JobSettings
    config: dict[str, Any]
    report_dir: Path
    started: float = dataclasses.field(default_factory=time.monotonic)

    @functools.cached_property
    def log(self) -> RunLog:
        """The run's TensorBoard logs, in the report directory: one set of writers for the
        whole run, closed by ``finish``."""
        return RunLog(self.report_dir / TENSORBOARD_DIRNAME)


@dataclass(frozen=True)
class JobResult:
    """What a finished job produced."""

    version_dir: Path
    report_dir: Path
    test_scores: Scores
    train_seconds: float
    # The trained model itself (a NumpyNetwork or a Keras model), for callers that keep
    # working with it in-process, like the notebook.
    model: Any


def start(experiment: str, settings: JobSettings, hyperparameters: Any) -> Run:
    """Check the name and directories, then log the configuration to a new report dir.

    Everything that can fail for a bad argument fails here or in ``prepare_data``, before
    TensorFlow is even imported.
    """
    from digits.jobs import reports
    try:
        validate_model_name(settings.name)
    except ValueError as error:
        raise JobError(str(error)) from error
    chief = settings.cluster is None or settings.cluster.is_chief
    if chief:
        check_writable_models_dir(settings.models, settings.name)
    try:
        # Only the chief reports; another worker's directory is scratch, removed at its end.
        report_dir = (reports.new_run_directory(settings.reports, experiment) if chief
                      else Path(tempfile.mkdtemp(prefix=f"digits-{experiment}-worker-")))
    except OSError as error:
        raise JobError(f"cannot write reports under {settings.reports}: {error.strerror or error}"
                       "; pass --reports naming a writable directory") from error
    config = {
        "experiment": experiment,
        "settings": _jsonable(dataclasses.asdict(settings)),
        "hyperparameters": _jsonable(dataclasses.asdict(hyperparameters)),
    }
    reports.write_json(report_dir / reports.CONFIG_FILENAME, config)
    log.info("%s: reports in %s; config %s", experiment, report_dir,
             json.dumps(config["hyperparameters"]))
    return Run(experiment, settings, config, report_dir)


def check_writable_models_dir(models: Path, name: str) -> None:
    """Raise ``JobError`` unless a version of ``name`` could be written under ``models``."""
    directory = volume.model_dir(models, name)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        # os.access lies for root and on some mounts; creating a file does not.
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as error:
        raise JobError(f"cannot write to the models directory {models}: "
                       f"{error.strerror or error}; pass --models (or DIGITS_MODELS) naming "
                       "a writable directory") from error


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy, TensorFlow and Keras, and make TensorFlow's ops deterministic."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def prepare_data(settings: JobSettings, digits: tuple[int, ...] = ALL_DIGITS) -> PreparedData:
    """Load and verify MNIST, apply ``--train-limit``, keep ``digits``, split off validation."""
    try:
        mnist = data.load_mnist(settings.data, settings.data_check)
    except data.DataError as error:
        raise JobError(str(error)) from error
    full_train = mnist.train
    if settings.train_limit is not None:
        full_train = full_train.first(settings.train_limit)
    full_train = data.keep_digits(full_train, digits)
    try:
        train, validation = data.split_validation(full_train, VALIDATION_FRACTION,
                                                  settings.seed)
    except ValueError as error:
        raise JobError(str(error)) from error
    test = data.keep_digits(mnist.test, digits)
    log.info("data %s: %d training, %d validation, %d test images of digits %s",
             mnist.source, len(train), len(validation), len(test), list(digits))
    return PreparedData(mnist, train, validation, test, digits)


def scaled(images: np.ndarray) -> np.ndarray:
    """uint8 pixels -> float32 in [0, 1]: what the models see (the serving graph does the same)."""
    return images.astype(np.float32) / 255.0


def serving_probabilities(module: Any, images: np.ndarray) -> np.ndarray:
    """Run the serving graph (``module.serve``) over ``images`` in chunks: float32 [N, C]."""
    import tensorflow as tf

    from digits.modelstore.signature import OUTPUT_NAME

    chunks = [module.serve(tf.constant(images[start:start + _PREDICT_CHUNK]))[OUTPUT_NAME]
              .numpy() for start in range(0, len(images), _PREDICT_CHUNK)]
    return np.concatenate(chunks).astype(np.float32)


def finish(
    run: Run,
    prepared: PreparedData,
    module: Any,
    history: Mapping[str, Sequence[float]],
    *,
    model: Any,
    description: str,
    extra_metrics: Mapping[str, Any] | None = None,
) -> JobResult:
    """Score the test set through the serving graph, write the reports, export the model.

    Test figures come from ``module.serve``, the very function that is exported, so the
    card's metrics are what the service will deliver.
    """
    from digits.jobs import reports
    from digits.jobs.export import export_model

    train_seconds = time.monotonic() - run.started
    test_scores = score(serving_probabilities(module, prepared.test.images),
                        prepared.test.labels)
    title = f"{run.experiment} ({run.settings.name})"
    reports.write_evaluation_plots(run.report_dir, prepared.test.images, test_scores,
                                   prepared.labels, title, history)
    run.log.finish(run_hyperparameters(run.config),
                   {"accuracy": test_scores.accuracy, "loss": test_scores.loss},
                   step=len(history.get("loss", [])),
                   images={"confusion_matrix": run.report_dir / reports.CONFUSION_FILENAME,
                           "misclassified": run.report_dir / reports.MISCLASSIFIED_FILENAME})
    metrics: dict[str, Any] = {
        "experiment": run.experiment,
        "test": test_scores.summary(),
        "validation_accuracy": _last(history.get("val_accuracy")),
        "epochs_run": len(history.get("loss", [])),
        "seconds": round(train_seconds, 1),
        **(extra_metrics or {}),
    }
    metrics_path = reports.write_json(run.report_dir / reports.METRICS_FILENAME, metrics)

    try:
        version_dir = export_model(
            module, run.settings.models, run.settings.name,
            version_contents.card(
                run.experiment, run.config, description, prepared.labels,
                data.fingerprint(prepared.mnist, len(prepared.train), len(prepared.validation),
                                 len(prepared.test), prepared.digits), test_scores),
            extra_files=version_contents.extra_files(history, prepared.test,
                                                     run.settings.seed, run.report_dir))
    except volume.ModelVolumeError as error:
        raise JobError(str(error)) from error
    metrics["version_dir"] = str(version_dir)
    reports.write_json(metrics_path, metrics)
    log.info("%s: test accuracy %.4f (%d images), %.0f s; exported %s; reports in %s",
             run.experiment, test_scores.accuracy, len(test_scores.labels), train_seconds,
             version_dir, run.report_dir)
    return JobResult(version_dir, run.report_dir, test_scores, train_seconds, model)


def existing_valid_version(models: Path, name: str) -> Path | None:
    """The newest version of ``name`` that loads cleanly, or None (for --skip-if-exists)."""
    from digits.modelstore.saved_model import InvalidModel, load_version

    for version in reversed(volume.list_versions(models, name)):
        version_dir = volume.model_dir(models, name) / str(version)
        try:
            load_version(version_dir)
        except InvalidModel as error:
            log.warning("ignoring %s: %s", version_dir, error)
            continue
        return version_dir
    return None


def _last(values: Sequence[float] | None) -> float | None:
    return float(values[-1]) if values else None


def _jsonable(value: Any) -> Any:
    """Paths become strings and tuples lists, so the config is plain JSON."""
    return json.loads(json.dumps(value, default=str))


def keras_verbosity() -> int:
    """Keras's progress bar on a terminal; one line per epoch in logs and pipes."""
    return 1 if sys.stderr.isatty() else 2
