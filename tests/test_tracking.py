"""TensorBoard logging of training runs: what a run's configuration looks like as HParams,
and the curves a run log writes (read back with TensorBoard's own reader)."""

from pathlib import Path
from typing import Any

import pytest

from digits.jobs.augmentation import Damage
from digits.jobs.tracking import RunLog, flat_hyperparameters, run_hyperparameters

from support.tensorboard_logs import read_run


def test_nested_configuration_becomes_flat_hparams_values() -> None:
    flat = flat_hyperparameters({"filters": (32, 64), "rate": 0.5, "epochs": 3, "on": True,
                                 "note": None, "damage": Damage(blur_share=0.25)})
    assert flat["filters"] == "[32, 64]"
    assert (flat["rate"], flat["epochs"], flat["on"]) == (0.5, 3, True)
    assert "note" not in flat
    assert flat["damage.blur_share"] == 0.25
    assert all(isinstance(value, bool | int | float | str) for value in flat.values())


def test_run_hyperparameters_name_the_experiment_seed_data_limit_and_workers() -> None:
    config: dict[str, Any] = {"experiment": "cnn", "settings": {"seed": 3, "train_limit": None},
              "hyperparameters": {"epochs": 2, "filters": [32, 64]}}
    assert run_hyperparameters(config) == {"experiment": "cnn", "seed": 3, "train_limit": 0,
                                           "workers": 1, "epochs": 2, "filters": "[32, 64]"}
    config["settings"]["cluster"] = {"workers": ["a:1", "b:2"], "index": 0}
    assert run_hyperparameters(config)["workers"] == 2


def test_epochs_go_to_train_and_validation_runs_under_keras_tags(tmp_path: Path) -> None:
    log = RunLog(tmp_path)
    for epoch in (1, 2):
        log.epoch(epoch, {"loss": 1.0 / epoch, "accuracy": 0.5 + epoch / 10,
                          "val_loss": 2.0 / epoch, "val_accuracy": 0.4 + epoch / 10,
                          "learning_rate": 0.01})
    log.finish({"experiment": "test", "epochs": 2}, {"accuracy": 0.75}, step=2)
    train, validation, session = (read_run(tmp_path / "train"),
                                  read_run(tmp_path / "validation"), read_run(tmp_path))
    assert train.scalars["epoch_loss"] == [(1, 1.0), (2, 0.5)]
    assert train.scalars["epoch_learning_rate"] == [(1, pytest.approx(0.01)),
                                                    (2, pytest.approx(0.01))]
    assert validation.scalars["epoch_accuracy"] == [(1, pytest.approx(0.5)),
                                                    (2, pytest.approx(0.6))]
    assert "epoch_learning_rate" not in validation.scalars
    assert session.scalars == {"test/accuracy": [(2, 0.75)]}
    assert session.hparams == {"experiment": "test", "epochs": 2.0}


def test_nothing_is_written_before_the_first_epoch(tmp_path: Path) -> None:
    RunLog(tmp_path / "tensorboard").close()
    assert not (tmp_path / "tensorboard").exists()
