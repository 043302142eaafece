"""The quality gate's rule, table-tested, and its evaluation of (fake) models on a golden
set; the served behaviour is in test_quality_gate.py."""

from collections.abc import Callable
from pathlib import Path
from typing import cast

import numpy as np
import pytest

from digits.modelstore import golden
from digits.modelstore.saved_model import LoadedModel
from digits.service.models import gate
from digits.v1.model_card_pb2 import ModelCard

LABELS = tuple(str(digit) for digit in range(10))
THRESHOLDS = gate.Thresholds(tolerance=0.02, margin=0.01, min_accuracy=0.5)


class FakeModel:
    """Answers each image with its label's one-hot row, except for the images ``wrong``
    picks, which get the next class; ``mangle`` may spoil the output."""

    def __init__(self, claimed: float | None, wrong: float = 0.0,
                 mangle: Callable[[np.ndarray], np.ndarray] = lambda p: p) -> None:
        self.labels = LABELS
        self.card = ModelCard(labels=LABELS)
        if claimed is not None:
            self.card.test_metrics["accuracy"] = claimed
        self.wrong, self.mangle = wrong, mangle

    def predict(self, pixels: np.ndarray) -> np.ndarray:
        truth = pixels[:, 0, 0].astype(np.int64) % 10  # the test images carry their label
        wrong = np.arange(len(pixels)) < round(self.wrong * len(pixels))
        answer = np.where(wrong, (truth + 1) % 10, truth)
        return self.mangle(np.eye(10, dtype=np.float32)[answer])


def loaded(model: FakeModel) -> LoadedModel:
    return cast(LoadedModel, model)


def golden_set(count: int = 1000) -> golden.GoldenSet:
    labels = np.arange(count) % 10
    images = np.zeros((count, 28, 28), np.uint8)
    images[:, 0, 0] = labels
    return golden.GoldenSet(images, labels, "golden.npz")


@pytest.mark.parametrize(("accuracy", "claimed", "default", "failure"), [
    (0.98, 0.986, None, ""),  # within the tolerance of its claim
    (0.95, 0.986, None, "below 0.9549 (the card claims 0.9860"),
    (0.96, 0.986, None, ""),  # 0.986 - 0.02 - 3 standard errors of 1,000 = 0.9549
    (0.98, None, None, ""),  # a card with no accuracy: only the floor and the default
    (0.45, None, None, "below the minimum 0.5"),
    (0.45, 0.45, None, "below the minimum 0.5"),  # an honest card does not help
    (0.97, 0.97, 0.99, "below the default version's 0.9900 less the margin 0.01"),
    (0.98, 0.97, 0.99, ""),
    (0.10, 0.986, 0.99, "below the minimum"),
])
def test_the_rule(accuracy: float, claimed: float | None, default: float | None,
                  failure: str) -> None:
    reason = gate.judge(accuracy, 1000, claimed, default, THRESHOLDS)
    assert (failure in reason) if failure else reason == "", reason


def test_every_broken_rule_is_named() -> None:
    reason = gate.judge(0.1, 1000, 0.986, 0.99, THRESHOLDS)
    assert "minimum" in reason and "card claims" in reason and "default version" in reason


def test_a_good_version_passes_with_its_figures() -> None:
    result = gate.evaluate(loaded(FakeModel(0.98, wrong=0.01)), golden_set(),
                           loaded(FakeModel(0.97, wrong=0.02)), THRESHOLDS)
    assert result.passed and result.accuracy == pytest.approx(0.99)
    assert result.default_accuracy == pytest.approx(0.98)
    assert (result.examples, result.golden_source) == (1000, "golden.npz")
    assert result.reason.startswith("passed: golden accuracy 0.9900") and result.seconds > 0


def test_a_version_that_claims_more_than_it_does_is_rejected() -> None:
    result = gate.evaluate(loaded(FakeModel(0.986, wrong=0.9)), golden_set(), None,
                           THRESHOLDS)
    assert not result.passed and result.accuracy == pytest.approx(0.1)
    assert "the card claims 0.9860" in result.reason


def test_a_worse_version_than_the_default_is_rejected() -> None:
    result = gate.evaluate(loaded(FakeModel(None, wrong=0.05)), golden_set(),
                           loaded(FakeModel(None, wrong=0.0)), THRESHOLDS)
    assert not result.passed and "default version's 1.0000" in result.reason


@pytest.mark.parametrize(("mangle", "problem"), [
    (lambda p: p[:, :9], "shape [1000, 9], expected [1000, 10]"),
    (lambda p: np.where(p == 1, np.nan, p), "1000 values are not finite"),
    (lambda p: p * 2, "outside [0, 1]"),
    (lambda p: p * 0.5, "sums to 0.5000, not 1"),
])
def test_malformed_outputs_are_rejected_whatever_the_accuracy(
        mangle: Callable[[np.ndarray], np.ndarray], problem: str) -> None:
    result = gate.evaluate(loaded(FakeModel(None, mangle=mangle)), golden_set(), None,
                           THRESHOLDS)
    assert not result.passed and problem in result.reason, result.reason


def test_no_golden_set_means_not_gated() -> None:
    result = gate.evaluate(loaded(FakeModel(0.99)), None, None, THRESHOLDS)
    assert result.passed and result.accuracy is None and "not gated" in result.reason


def test_the_operators_golden_set_takes_precedence_over_the_versions_own(
        tmp_path: Path) -> None:
    version_dir = tmp_path / "mnist" / "1"
    version_dir.mkdir(parents=True)
    assert gate.find_golden_set(version_dir, 10) is None
    own = np.zeros((4, 28, 28), np.uint8)
    (version_dir / golden.GOLDEN_FILENAME).write_bytes(golden.encode(own, np.arange(4)))
    found = gate.find_golden_set(version_dir, 10)
    assert found is not None and len(found) == 4
    operators = tmp_path / "mnist" / golden.GOLDEN_FILENAME
    operators.write_bytes(golden.encode(np.zeros((6, 28, 28), np.uint8), np.arange(6)))
    found = gate.find_golden_set(version_dir, 10)
    assert found is not None and len(found) == 6 and found.source == str(operators)
