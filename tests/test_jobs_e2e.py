"""Every experiment end to end on a real MNIST slice, through the real `digits` command.

Each job trains briefly (--train-limit, few epochs), then the exported version is loaded
as the service loads it and must classify real test images above a floor. The floors
sit far below what the full jobs reach (scripts/bench-accuracy) but far above chance.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from google.protobuf import json_format

from digits.cli import main
from digits.jobs import reports
from digits.jobs.data import keep_digits, load_mnist
from digits.jobs.version_contents import CLASS_ACCURACY_PREFIX, HISTORY_FILENAME
from digits.modelstore import golden
from digits.modelstore.card import sha256_file
from digits.modelstore.report_files import report_files, report_path
from digits.modelstore.saved_model import LoadedModel, load_version
from digits.service.models import gate
from digits.service.settings import VolumeSettings

from support.tensorboard_logs import read_run

pytestmark = pytest.mark.e2e


@dataclass
class Trained:
    version_dir: Path
    report_dir: Path
    model: LoadedModel
    metrics: dict[str, Any]


def _train(tmp_path: Path, mnist_path: Path, *arguments: str) -> Trained:
    result = CliRunner().invoke(main, [
        "train", *arguments, "--data", str(mnist_path), "--models", str(tmp_path / "models"),
        "--reports", str(tmp_path / "reports")])
    assert result.exit_code == 0, result.output + repr(result.exception)
    lines = result.output.splitlines()
    version_dir = Path(next(line for line in lines if line.startswith("exported "))
                       .removeprefix("exported "))
    report_dir = Path(next(line for line in lines if line.startswith("reports in "))
                      .removeprefix("reports in "))
    metrics = json.loads((report_dir / reports.METRICS_FILENAME).read_text())
    return Trained(version_dir, report_dir, load_version(version_dir), metrics)


def _served_accuracy(model: LoadedModel, mnist_path: Path, digits: tuple[int, ...]) -> float:
    """Accuracy of the exported model on the first 2,000 real test images of its digits."""
    test = keep_digits(load_mnist(mnist_path).test, digits)
    images, labels = test.images[:2000], test.labels[:2000]
    probabilities = model.predict(images)
    assert probabilities.shape == (len(images), len(digits))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
    return float(np.mean(probabilities.argmax(axis=1) == labels))


def _assert_reports_and_card(trained: Trained, experiment: str, name: str) -> None:
    for filename in (reports.CONFIG_FILENAME, reports.METRICS_FILENAME,
                     reports.CURVES_FILENAME, reports.CONFUSION_FILENAME,
                     reports.MISCLASSIFIED_FILENAME):
        path = trained.report_dir / filename
        assert path.is_file() and path.stat().st_size > 0, path
    card = trained.model.card
    assert (card.name, card.experiment) == (name, experiment)
    assert trained.version_dir == trained.version_dir.parent / str(card.version)
    assert card.test_metrics["accuracy"] == pytest.approx(trained.metrics["test"]["accuracy"])
    assert card.dataset.array_sha256["x_test"].startswith("6d87418db22c")
    config = json_format.MessageToDict(card.training_config)
    assert config["hyperparameters"]["epochs"] > 0 and config["experiment"] == experiment
    assert set(card.framework_versions) >= {"tensorflow", "numpy", "python"}
    assert HISTORY_FILENAME in card.file_sha256
    # The golden set the service's quality gate uses: listed in the card, a sample of the
    # test set, and a version passes it against its own card.
    assert golden.GOLDEN_FILENAME in card.file_sha256
    golden_set = golden.read(trained.version_dir / golden.GOLDEN_FILENAME, len(card.labels))
    assert len(golden_set) == min(1000, int(card.test_metrics["examples"]))
    settings = VolumeSettings()
    verdict = gate.evaluate(trained.model, golden_set, None, gate.Thresholds(
        settings.gate_tolerance, settings.gate_margin, settings.gate_min_accuracy))
    assert verdict.passed and verdict.accuracy is not None, verdict.reason
    assert abs(verdict.accuracy - card.test_metrics["accuracy"]) < 0.05
    _assert_report_travels_with_the_version(trained)
    _assert_tensorboard_logs(trained)


def _assert_tensorboard_logs(trained: Trained) -> None:
    """The run's TensorBoard session: curves per epoch on training and validation, the
    learning rate, the test figures, the plots and the hyper-parameters."""
    logs = trained.report_dir / "tensorboard"
    epochs = list(range(1, trained.metrics["epochs_run"] + 1))
    # A study's curves are in its models' own sessions; the exported one's are checked.
    curves = (logs / f"{trained.metrics['best_variant']}-seed{trained.metrics['best_seed']}"
              if "best_variant" in trained.metrics else logs)
    train, validation, session = (read_run(curves / "train"),
                                  read_run(curves / "validation"), read_run(logs))
    assert set(train.scalars) >= {"epoch_loss", "epoch_accuracy", "epoch_learning_rate"}
    assert set(validation.scalars) >= {"epoch_loss", "epoch_accuracy"}
    for curve in (*train.scalars.values(), *validation.scalars.values()):
        assert [step for step, _ in curve] == epochs
    assert validation.scalars["epoch_accuracy"][-1][1] == pytest.approx(
        trained.metrics["validation_accuracy"], abs=1e-6)
    assert session.scalars["test/accuracy"] == [
        (epochs[-1], pytest.approx(trained.metrics["test"]["accuracy"], abs=1e-6))]
    assert set(session.images) == {"confusion_matrix", "misclassified"}
    config = json.loads((trained.report_dir / reports.CONFIG_FILENAME).read_text())
    assert session.hparams["experiment"] == config["experiment"]
    assert session.hparams["epochs"] == config["hyperparameters"]["epochs"]


def _assert_report_travels_with_the_version(trained: Trained) -> None:
    """The run's plots are inside the version, listed with their sha256, and the card
    holds each class's test accuracy."""
    card = trained.model.card
    plots = sorted(path.name for path in trained.report_dir.glob("*.png"))
    assert {reports.CONFUSION_FILENAME, reports.MISCLASSIFIED_FILENAME,
            reports.CURVES_FILENAME} <= set(plots)
    assert [name.removeprefix("report/") for name in report_files(card)
            if name.endswith(".png")] == plots
    for name in plots:
        assert card.file_sha256[report_path(name)] == sha256_file(trained.report_dir / name)
    per_class = [card.test_metrics[CLASS_ACCURACY_PREFIX + label] for label in card.labels]
    assert per_class == pytest.approx(trained.metrics["test"]["per_class_accuracy"])


@pytest.mark.parametrize("implementation", ["numpy", "keras"])
def test_binary(tmp_path: Path, mnist_path: Path, implementation: str) -> None:
    trained = _train(tmp_path, mnist_path, "binary", "--impl", implementation,
                     "--train-limit", "3000", "--epochs", "2")
    _assert_reports_and_card(trained, "binary", "mnist-binary")
    assert trained.model.labels == ("0", "1")
    assert list(trained.model.card.dataset.digits) == [0, 1]
    assert trained.model.card.test_metrics["examples"] == 2115
    assert _served_accuracy(trained.model, mnist_path, (0, 1)) >= 0.98


@pytest.mark.parametrize("implementation", ["numpy", "keras"])
def test_binary_run_reports_each_epoch_and_returns_the_trained_model(
        tmp_path: Path, mnist_path: Path, implementation: str) -> None:
    """What the notebook relies on: live figures per epoch, the model in the result."""
    from digits.jobs import binary
    from digits.jobs.pipeline import JobSettings

    settings = JobSettings(data=mnist_path, models=tmp_path / "models",
                           reports=tmp_path / "reports", name="mnist-binary",
                           train_limit=1500)
    seen: list[tuple[int, dict[str, float]]] = []
    result = binary.run(settings, binary.Hyperparameters(implementation=implementation,
                                                         epochs=2),
                        on_epoch=lambda epoch, figures: seen.append((epoch, dict(figures))))
    assert [epoch for epoch, _ in seen] == [1, 2]
    history = json.loads((result.version_dir / HISTORY_FILENAME).read_text())
    assert [figures["val_accuracy"] for _, figures in seen] == pytest.approx(
        history["val_accuracy"])
    images = keep_digits(load_mnist(mnist_path).test, (0, 1)).images[:50]
    if implementation == "numpy":
        in_process = result.model.predict_probability(
            images.reshape(len(images), -1) / 255.0)
    else:
        in_process = result.model.predict(images / 255.0, verbose=0)[:, 0]
    np.testing.assert_allclose(load_version(result.version_dir).predict(images)[:, 1],
                               in_process, atol=1e-5)


def test_multiclass_then_evaluate(tmp_path: Path, mnist_path: Path) -> None:
    trained = _train(tmp_path, mnist_path, "multiclass", "--train-limit", "3000",
                     "--epochs", "2")
    _assert_reports_and_card(trained, "multiclass", "mnist")
    assert trained.model.labels == tuple(str(d) for d in range(10))
    assert _served_accuracy(trained.model, mnist_path, tuple(range(10))) >= 0.80

    result = CliRunner().invoke(main, ["evaluate", str(trained.version_dir), "--data",
                                       str(mnist_path), "--reports",
                                       str(tmp_path / "reports")])
    assert result.exit_code == 0, result.output
    evaluated = tmp_path / "reports" / "evaluate" / "mnist" / "1"
    metrics = json.loads((evaluated / reports.METRICS_FILENAME).read_text())
    # Same graph, same images: the recomputed figures are the card's.
    assert metrics["test"]["accuracy"] == pytest.approx(metrics["card_test_accuracy"],
                                                        abs=1e-12)
    assert metrics["test"]["examples"] == 10000
    for filename in (reports.CURVES_FILENAME, reports.CONFUSION_FILENAME,
                     reports.MISCLASSIFIED_FILENAME, reports.CONFIG_FILENAME):
        assert (evaluated / filename).is_file()


def test_cnn(tmp_path: Path, mnist_path: Path) -> None:
    trained = _train(tmp_path, mnist_path, "cnn", "--train-limit", "3000", "--epochs", "3",
                     "--name", "cnn-e2e")
    _assert_reports_and_card(trained, "cnn", "cnn-e2e")
    assert _served_accuracy(trained.model, mnist_path, tuple(range(10))) >= 0.80


def test_regularization(tmp_path: Path, mnist_path: Path) -> None:
    trained = _train(tmp_path, mnist_path, "regularization", "--train-limit", "1500",
                     "--subset-size", "400", "--seeds", "2", "--epochs", "4")
    _assert_reports_and_card(trained, "regularization", "mnist")
    assert _served_accuracy(trained.model, mnist_path, tuple(range(10))) >= 0.60
    table = (trained.report_dir / "regularization.md").read_text()
    for variant in ("baseline", "l2", "dropout", "batchnorm", "all"):
        assert f"| {variant} |" in table
    assert "Ranked by mean validation accuracy" in table
    assert trained.metrics["best_variant"] in table
    runs = json.loads((trained.report_dir / "regularization_runs.json").read_text())["runs"]
    assert len(runs) == 10 and {r["seed"] for r in runs} == {0, 1}
    for filename in ("regularization_curves.png", "regularization_accuracy.png",
                     "regularization.md"):
        assert (trained.report_dir / filename).stat().st_size > 0
        assert report_path(filename) in trained.model.card.file_sha256
    assert trained.model.card.dataset.train_examples == 400
    # Every model of the study is a TensorBoard session of its own, for the HParams table.
    sessions = {path.name: read_run(path)
                for path in (trained.report_dir / "tensorboard").glob("*-seed*")}
    assert len(sessions) == 10
    for run in runs:
        session = sessions[f"{run['variant']}-seed{run['seed']}"]
        assert (session.hparams["variant"], session.hparams["seed"]) == (run["variant"],
                                                                         run["seed"])
        assert session.scalars["test/accuracy"][0][1] == pytest.approx(run["test"])


@pytest.mark.parametrize("experiment", [["binary", "--impl", "numpy"], ["multiclass"],
                                        ["cnn"]])
def test_same_seed_and_data_give_the_same_metrics(tmp_path: Path, mnist_path: Path,
                                                  experiment: list[str]) -> None:
    arguments = [*experiment, "--train-limit", "800", "--epochs", "1", "--seed", "5"]
    first = _train(tmp_path / "first", mnist_path, *arguments)
    second = _train(tmp_path / "second", mnist_path, *arguments)
    assert first.metrics["test"] == second.metrics["test"]
    first_history = json.loads((first.version_dir / HISTORY_FILENAME).read_text())
    assert first_history == json.loads((second.version_dir / HISTORY_FILENAME).read_text())
