"""The CNN's training-only damage: changes training batches, never inference."""

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from google.protobuf import json_format

from digits.cli import main
from digits.jobs.augmentation import Damage, damage_layer
from digits.jobs.cnn import RECIPES, ROBUST
from digits.modelstore.card import read_card


def _digits(mnist_path: Path) -> np.ndarray:
    with np.load(mnist_path) as data:
        return (data["x_train"][:64, :, :, None] / 255.0).astype(np.float32)


def test_damage_applies_in_training_only(mnist_path: Path) -> None:
    images = _digits(mnist_path)
    layer = damage_layer(Damage(rotation_degrees=30.0, blur_share=0.25), seed=3)
    np.testing.assert_array_equal(np.asarray(layer(images, training=False)), images)
    damaged = np.asarray(layer(images, training=True))
    assert damaged.shape == images.shape
    assert damaged.min() >= 0.0 and damaged.max() <= 1.0
    changed = np.abs(damaged - images).reshape(len(images), -1).max(axis=1) > 0.05
    assert changed.mean() > 0.5  # rotations alone touch nearly every image


def test_each_kind_of_damage_does_what_it_says(mnist_path: Path) -> None:
    images = _digits(mnist_path)

    def damaged(damage: Damage) -> np.ndarray:
        return np.asarray(damage_layer(damage, seed=5)(images, training=True))

    blurred = damaged(Damage(blur_share=1.0))
    assert np.abs(np.diff(blurred, axis=2)).mean() < np.abs(np.diff(images, axis=2)).mean()
    noisy = damaged(Damage(noise_share=1.0, noise_stddev=0.3))
    background = images == 0
    assert noisy[background].mean() > 0.02  # noise over the black background too
    coarse = damaged(Damage(coarse_share=1.0))
    assert np.abs(np.diff(coarse, axis=2)).mean() < np.abs(np.diff(images, axis=2)).mean()
    assert not Damage().any and ROBUST.any and RECIPES["robust"].served_damage.any


def test_the_robust_recipe_trains_and_says_so_on_the_card(tmp_path: Path,
                                                          mnist_path: Path) -> None:
    result = CliRunner().invoke(main, [
        "train", "cnn", "--recipe", "robust", "--train-limit", "600", "--epochs", "1",
        "--data", str(mnist_path), "--models", str(tmp_path / "models"),
        "--reports", str(tmp_path / "reports")])
    assert result.exit_code == 0, result.output + repr(result.exception)
    recipe = RECIPES["robust"]
    card = read_card(tmp_path / "models" / "mnist" / "1")
    hyperparameters = json_format.MessageToDict(card.training_config)["hyperparameters"]
    assert hyperparameters["damage"] == json.loads(json.dumps(asdict(recipe.damage)))
    assert hyperparameters["served_damage"] == asdict(recipe.served_damage)
    assert "damage" in card.description
    # The damaged, preprocessed copies were added to the training digits.
    report_dir = Path(result.output.strip().splitlines()[-1].removeprefix("reports in "))
    metrics = json.loads((report_dir / "metrics.json").read_text())
    shares = sum(asdict(recipe.served_damage).values())
    assert metrics["damaged_copies"] == pytest.approx(
        card.dataset.train_examples * shares, abs=4)
