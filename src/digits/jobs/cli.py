"""``digits train ...`` and ``digits evaluate``: the jobs' command-line interface.

The experiment modules load TensorFlow only when a job runs, so ``--help`` and argument
errors answer at once.
"""

import dataclasses
import functools
import logging
import signal
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import click

from digits.jobs import binary, cnn, multiclass, regularization
from digits.jobs.cluster import ClusterError, from_options
from digits.jobs.pipeline import JobError, JobSettings, existing_valid_version
from digits.modelstore.names import InvalidModelName, validate_model_name

log = logging.getLogger(__name__)

_CHECK_HELP = ("How strictly to verify the data file: 'canonical' requires exactly the "
               "MNIST arrays (sha256 of each); 'structure' accepts any file of the same "
               "layout with a warning [env: DIGITS_DATA_CHECK].")


def _model_name(_context: click.Context, _parameter: click.Parameter,
                value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return validate_model_name(value)
    except InvalidModelName as error:
        raise click.BadParameter(str(error)) from error


def _common_options(default_name: str, default_epochs: int) -> Callable[[Any], Any]:
    """The options every ``digits train`` experiment takes."""
    options = [
        click.option("--data", type=click.Path(path_type=Path), envvar="DIGITS_MNIST",
                     help="Local mnist.npz to train on [env: DIGITS_MNIST]; without it, "
                          "Keras downloads MNIST (needs network)."),
        click.option("--data-check", type=click.Choice(["canonical", "structure"]),
                     default="canonical", show_default=True, envvar="DIGITS_DATA_CHECK",
                     help=_CHECK_HELP),
        click.option("--models", type=click.Path(path_type=Path), envvar="DIGITS_MODELS",
                     default=Path("models"), show_default=True,
                     help="Model volume root; the model is exported to "
                          "MODELS/NAME/VERSION/ [env: DIGITS_MODELS]."),
        click.option("--name", default=default_name, show_default=True,
                     callback=_model_name,
                     help="Model name to export as ([a-z0-9][a-z0-9_-]{0,62})."),
        click.option("--reports", type=click.Path(path_type=Path), default=Path("reports"),
                     show_default=True, envvar="DIGITS_REPORTS",
                     help="Reports root; each run writes plots, metrics.json and "
                          "config.json to REPORTS/EXPERIMENT/TIME/ [env: DIGITS_REPORTS]."),
        click.option("--seed", type=int, default=0, show_default=True,
                     help="Seed of every random choice (same seed and data give the "
                          "same metrics on CPU)."),
        click.option("--epochs", type=click.IntRange(min=1), default=default_epochs,
                     show_default=True, help="Passes over the training data."),
        click.option("--train-limit", type=click.IntRange(min=2), default=None,
                     help="Use only the first N training images (quick runs and tests); "
                          "validation is still held out from them."),
        click.option("--skip-if-exists", is_flag=True,
                     help="Exit 0 without training when NAME already has a valid version "
                          "(for the Compose training job)."),
    ]
    return lambda command: functools.reduce(lambda f, option: option(f),
                                            reversed(options), command)


def _worker_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Options of the experiments that can train on several workers at once."""
    options = [
        click.option("--workers", envvar="DIGITS_WORKERS", metavar="HOST:PORT,...",
                     help="Train on several workers (MultiWorkerMirroredStrategy): every "
                          "worker's address, the chief (which exports) first. Without it, "
                          "TF_CONFIG is used when set [env: DIGITS_WORKERS]."),
        click.option("--worker-index", type=click.IntRange(min=0),
                     envvar="DIGITS_WORKER_INDEX",
                     help="This worker's place in --workers [env: DIGITS_WORKER_INDEX]."),
        click.option("--worker-timeout", type=click.FloatRange(min=1), default=120.0,
                     show_default=True, envvar="DIGITS_WORKER_TIMEOUT",
                     help="Seconds to wait for every worker to join, and for each "
                          "training step, before failing [env: DIGITS_WORKER_TIMEOUT]."),
    ]
    return functools.reduce(lambda f, option: option(f), reversed(options), command)


def _settings(options: dict[str, Any]) -> JobSettings:
    try:
        cluster = from_options(options.get("workers"), options.get("worker_index"))
    except ClusterError as error:
        raise click.UsageError(str(error)) from error
    return JobSettings(data=options["data"], models=options["models"],
                       reports=options["reports"], name=options["name"],
                       seed=options["seed"], train_limit=options["train_limit"],
                       data_check=options["data_check"], cluster=cluster,
                       worker_timeout=options.get("worker_timeout", 120.0))


def _terminate(signum: int, _frame: FrameType | None) -> None:
    # SystemExit unwinds the stack, so a half-written export's staging directory is
    # removed on SIGTERM as on Ctrl-C; SIGKILL leaves it hidden, swept by the next export.
    raise SystemExit(128 + signum)


def _run_job(options: dict[str, Any], experiment: Callable[[Any], Any]) -> None:
    """Shared body of the train commands: skip check, run, one-line errors, summary."""
    # TensorFlow logs every SavedModel write at INFO; the jobs' own lines say what matters.
    for noisy in ("absl", "tensorflow"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    settings = _settings(options)
    if options["skip_if_exists"]:
        existing = existing_valid_version(settings.models, settings.name)
        if existing is not None:
            click.echo(f"{existing} is a valid version of {settings.name!r}; "
                       "skipping training (--skip-if-exists)")
            return
    signal.signal(signal.SIGTERM, _terminate)
    from digits.jobs.distributed import WorkerFailed, WorkerFinished
    try:
        result = experiment(settings)
    except WorkerFinished as finished:
        click.echo(str(finished))
        return
    except (JobError, ValueError, WorkerFailed) as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"test accuracy {result.test_scores.accuracy:.4f} on "
               f"{len(result.test_scores.labels)} images, {result.train_seconds:.0f} s")
    click.echo(f"exported {result.version_dir}")
    click.echo(f"reports in {result.report_dir}")


@click.group("train")
def train_group() -> None:
    """Train a model, evaluate it on the test set, export it to the model volume.

    Every run holds out a validation split from the training data, writes learning
    curves, a confusion matrix, misclassified test images, metrics.json and its
    config.json to the reports directory, then exports a versioned SavedModel atomically.
    """


@train_group.command("binary")
@click.option("--impl", "implementation", type=click.Choice(["numpy", "keras"]),
              default="numpy", show_default=True,
              help="numpy: the from-scratch network with hand-written backprop; "
                   "keras: its twin (same architecture, loss, optimiser).")
@_common_options(binary.DEFAULT_NAME, binary.Hyperparameters.epochs)
def train_binary(implementation: str, **options: Any) -> None:
    """0 versus 1: dense ReLU network, sigmoid output, binary cross-entropy, SGD."""
    hyperparameters = binary.Hyperparameters(implementation=implementation,
                                             epochs=options["epochs"])
    _run_job(options, lambda settings: binary.run(settings, hyperparameters))


@train_group.command("multiclass")
@_common_options(multiclass.DEFAULT_NAME, multiclass.Hyperparameters.epochs)
@_worker_options
def train_multiclass(**options: Any) -> None:
    """All ten digits: dense network with dropout, softmax, Adam."""
    hyperparameters = multiclass.Hyperparameters(epochs=options["epochs"])
    _run_job(options, lambda settings: multiclass.run(settings, hyperparameters))


@train_group.command("cnn")
@_common_options(cnn.DEFAULT_NAME, cnn.Hyperparameters.epochs)
@_worker_options
@click.option("--recipe", type=click.Choice(["default", "robust"]), default="default",
              show_default=True,
              help="robust: also rotations, blur, noise and coarse scans in training, "
                   f"{cnn.RECIPES['robust'].epochs} epochs unless --epochs is given "
                   "(docs/training.md#robustness).")
def train_cnn(recipe: str, **options: Any) -> None:
    """All ten digits: small convolutional network with BatchNorm and random shifts."""
    hyperparameters = cnn.RECIPES[recipe]
    source = click.get_current_context().get_parameter_source("epochs")
    if source is not click.core.ParameterSource.DEFAULT:
        hyperparameters = dataclasses.replace(hyperparameters, epochs=options["epochs"])
    _run_job(options, lambda settings: cnn.run(settings, hyperparameters))


@train_group.command("regularization")
@click.option("--seeds", type=click.IntRange(min=1),
              default=regularization.Hyperparameters.seeds, show_default=True,
              help="Runs per variant, with seeds SEED, SEED+1, ...; the spread over them "
                   "is reported.")
@click.option("--subset-size", type=click.IntRange(min=10),
              default=regularization.Hyperparameters.subset_size, show_default=True,
              help="Training images per run (small, so that the baseline overfits).")
@_common_options(regularization.DEFAULT_NAME, regularization.Hyperparameters.epochs)
def train_regularization(seeds: int, subset_size: int, **options: Any) -> None:
    """Baseline vs L2 vs Dropout vs BatchNorm vs all three; exports the best variant."""
    hyperparameters = regularization.Hyperparameters(
        seeds=seeds, subset_size=subset_size, epochs=options["epochs"])
    _run_job(options, lambda settings: regularization.run(settings, hyperparameters))


@click.command("evaluate")
@click.argument("version_dir", type=click.Path(path_type=Path))
@click.option("--data", type=click.Path(path_type=Path), envvar="DIGITS_MNIST",
              help="Local mnist.npz [env: DIGITS_MNIST]; without it, Keras's download.")
@click.option("--data-check", type=click.Choice(["canonical", "structure"]),
              default="canonical", show_default=True, envvar="DIGITS_DATA_CHECK",
              help=_CHECK_HELP)
@click.option("--reports", type=click.Path(path_type=Path), default=Path("reports"),
              show_default=True, envvar="DIGITS_REPORTS",
              help="Reports root; writes REPORTS/evaluate/NAME/VERSION/ "
                   "[env: DIGITS_REPORTS].")
@click.option("--robustness", is_flag=True,
              help="Also score corrupted digits (translated, scaled, rotated, sheared, "
                   "thick and thin strokes, blurred, noisy, inverted, low resolution, "
                   "photographed), each through the service's preprocessing; prints a "
                   "table and writes robustness.png, .md and .json.")
@click.option("--robustness-images", type=click.IntRange(min=1), default=2000,
              show_default=True, help="Test digits per corruption (the first N).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the corruptions: the same seed gives the same images.")
def evaluate_command(version_dir: Path, data: Path | None, data_check: str,
                     reports: Path, robustness: bool, robustness_images: int,
                     seed: int) -> None:
    """Recompute the test reports of an exported model, e.g. models/mnist/3.

    Loads VERSION_DIR as the service does (card and file checks, serving signature),
    scores it on the MNIST test images of its digits and writes the confusion matrix,
    misclassified images, learning curves (from the stored training history),
    metrics.json and config.json.
    """
    from digits.jobs.evaluate import evaluate

    try:
        evaluation = evaluate(version_dir, data, reports, data_check)
    except JobError as error:
        raise click.ClickException(str(error)) from error
    card = ("" if evaluation.card_accuracy is None
            else f" (card: {evaluation.card_accuracy:.4f})")
    click.echo(f"test accuracy {evaluation.scores.accuracy:.4f} on "
               f"{len(evaluation.scores.labels)} images{card}")
    if robustness:
        from digits.jobs import robustness as report

        rows = report.measure(evaluation.model, evaluation.test.first(robustness_images),
                              seed)
        report.write(evaluation.report_dir, rows, evaluation.title)
        click.echo(report.table(rows))
    click.echo(f"reports in {evaluation.report_dir}")
