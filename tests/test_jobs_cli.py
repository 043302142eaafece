"""`digits train` / `digits evaluate`: bad input gives one clear line and a non-zero exit."""

from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner

from digits.cli import main
from digits.jobs import cnn
from digits.jobs.cli import train_group
from digits.jobs.export import DenseStackServingModule, export_model
from digits.jobs.pipeline import JobError, JobSettings
from digits.modelstore import volume
from digits.v1.model_card_pb2 import ModelCard

from support.cli import error_line, run_digits


@pytest.fixture
def places(tmp_path: Path) -> list[str]:
    return ["--models", str(tmp_path / "models"), "--reports", str(tmp_path / "reports")]


def test_missing_data_file(tmp_path: Path, places: list[str]) -> None:
    line = error_line(run_digits("train", "binary", "--data", str(tmp_path / "no.npz"),
                               *places))
    assert "no.npz: no such file; pass --data (or DIGITS_MNIST)" in line


def test_corrupt_data_file(tmp_path: Path, places: list[str], mnist_path: Path) -> None:
    corrupt = tmp_path / "mnist.npz"
    corrupt.write_bytes(mnist_path.read_bytes()[:5000])
    line = error_line(run_digits("train", "multiclass", "--data", str(corrupt), *places))
    assert f"{corrupt}: not a readable .npz file" in line


def test_data_file_from_the_environment(tmp_path: Path, places: list[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGITS_MNIST", str(tmp_path / "env.npz"))
    line = error_line(run_digits("train", "cnn", *places))
    assert "env.npz: no such file" in line


def test_invalid_model_name(places: list[str], mnist_path: Path) -> None:
    line = error_line(run_digits("train", "binary", "--data", str(mnist_path), "--name",
                               "Bad/Name", *places))
    assert "Invalid value for '--name'" in line and "lowercase letters" in line


def test_unwritable_models_directory(tmp_path: Path, mnist_path: Path) -> None:
    # A regular file where the models directory should be: unwritable even for root.
    blocker = tmp_path / "models"
    blocker.write_text("not a directory")
    line = error_line(run_digits("train", "binary", "--data", str(mnist_path), "--models",
                               str(blocker), "--reports", str(tmp_path / "reports")))
    assert f"cannot write to the models directory {blocker}" in line
    assert "--models (or DIGITS_MODELS)" in line


@pytest.mark.parametrize("epochs", ["0", "-3"])
def test_epochs_must_be_positive(epochs: str, places: list[str], mnist_path: Path) -> None:
    line = error_line(run_digits("train", "multiclass", "--data", str(mnist_path), "--epochs",
                               epochs, *places))
    assert "Invalid value for '--epochs'" in line and ">=1" in line


def test_unknown_experiment() -> None:
    line = error_line(run_digits("train", "transformer"))
    assert "No such command 'transformer'" in line


def test_evaluate_rejects_a_directory_that_is_not_a_version(tmp_path: Path) -> None:
    line = error_line(run_digits("evaluate", str(tmp_path)))
    assert "cannot evaluate" in line and "no model card" in line


def test_every_option_explains_itself() -> None:
    commands = [*train_group.commands.values(), main.commands["evaluate"]]
    assert {c.name for c in commands} >= {"binary", "multiclass", "cnn", "regularization",
                                          "evaluate"}
    for command in commands:
        for parameter in command.params:
            if isinstance(parameter, click.Option):
                assert parameter.help, f"{command.name} {parameter.opts} has no help"
        for option in ("--data", "--data-check"):
            assert option in CliRunner().invoke(command, ["--help"]).output


def test_common_options_and_environment_names() -> None:
    for command in train_group.commands.values():
        names = {opt for p in command.params for opt in p.opts}
        assert names >= {"--data", "--models", "--name", "--seed", "--epochs", "--reports",
                         "--train-limit", "--skip-if-exists"}
        by_name = {p.name: p for p in command.params}
        assert by_name["data"].envvar == "DIGITS_MNIST"
        assert by_name["models"].envvar == "DIGITS_MODELS"


def test_default_model_names_are_the_documented_ones() -> None:
    defaults = {name: {p.name: p.default for p in command.params}["name"]
                for name, command in train_group.commands.items()}
    assert defaults == {"binary": "mnist-binary", "multiclass": "mnist", "cnn": "mnist",
                        "regularization": "mnist"}


def test_skip_if_exists_skips_only_when_a_valid_version_exists(
        tmp_path: Path, mnist_path: Path) -> None:
    models = tmp_path / "models"
    arguments = ["train", "binary", "--data", str(mnist_path), "--models", str(models),
                 "--reports", str(tmp_path / "reports"), "--name", "skippy",
                 "--train-limit", "400", "--epochs", "1", "--skip-if-exists"]
    # An incomplete version (no card) does not count: the job trains and exports v2.
    (models / "skippy" / "1").mkdir(parents=True)
    trained = CliRunner().invoke(main, arguments)
    assert trained.exit_code == 0, trained.output
    assert volume.list_versions(models, "skippy") == [1, 2]

    skipped = CliRunner().invoke(main, arguments)
    assert skipped.exit_code == 0, skipped.output
    assert "skipping training" in skipped.output
    assert volume.list_versions(models, "skippy") == [1, 2]


def test_skip_if_exists_does_not_need_the_data(tmp_path: Path) -> None:
    module = DenseStackServingModule([(np.ones((784, 2)), np.zeros(2))], output="softmax")
    export_model(module, tmp_path / "models", "mnist", ModelCard(labels=["a", "b"]))
    result = CliRunner().invoke(main, ["train", "cnn", "--data", str(tmp_path / "absent"),
                                       "--models", str(tmp_path / "models"),
                                       "--skip-if-exists"])
    assert result.exit_code == 0 and "skipping training" in result.output


@pytest.mark.parametrize(("arguments", "epochs", "robust"), [
    ([], cnn.Hyperparameters.epochs, False),
    (["--recipe", "robust"], cnn.RECIPES["robust"].epochs, True),
    (["--recipe", "robust", "--epochs", "3"], 3, True),
    (["--epochs", "3"], 3, False),
])
def test_a_cnn_recipe_brings_its_epochs_unless_given(
        arguments: list[str], epochs: int, robust: bool, places: list[str],
        mnist_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chosen: list[cnn.Hyperparameters] = []

    def record(settings: JobSettings, hyperparameters: cnn.Hyperparameters) -> None:
        # Only which settings reach the job is checked here; the recipes train in
        # test_augmentation and test_jobs_e2e.
        chosen.append(hyperparameters)
        raise JobError("recorded")

    monkeypatch.setattr(cnn, "run", record)
    result = CliRunner().invoke(main, ["train", "cnn", *arguments, "--data",
                                       str(mnist_path), *places])
    assert "recorded" in result.output
    assert chosen[0].epochs == epochs
    assert (chosen[0].served_damage == cnn.ROBUST_SERVED) is robust
    assert (chosen[0].damage == cnn.ROBUST) is robust
    assert cnn.RECIPES["robust"].epochs > cnn.Hyperparameters.epochs
