"""Scores from probabilities, the report plots, and the regularisation study's conclusion."""

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from digits.jobs import regularization_report, reports
from digits.jobs.scoring import score


def test_scores_of_a_small_example() -> None:
    probabilities = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1],
                              [0.1, 0.1, 0.8]])
    labels = np.array([0, 1, 1, 2])
    scores = score(probabilities, labels)
    assert scores.accuracy == 0.75
    assert scores.loss == pytest.approx(-np.mean(np.log([0.9, 0.7, 0.3, 0.8])))
    assert scores.confusion.tolist() == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]
    assert scores.misclassified.tolist() == [2]
    assert scores.per_class_accuracy == [1.0, 0.5, 1.0]
    summary = scores.summary()
    assert summary["errors"] == 1 and summary["examples"] == 4
    json.dumps(summary)  # plain JSON types only


def test_misclassified_are_ordered_by_confidence() -> None:
    probabilities = np.array([[0.4, 0.6], [0.05, 0.95], [0.3, 0.7], [0.9, 0.1]])
    scores = score(probabilities, np.array([0, 0, 0, 0]))
    assert scores.misclassified.tolist() == [1, 2, 0]


@pytest.mark.parametrize(("probabilities", "labels", "message"), [
    (np.ones((3, 2)) / 2, np.array([0, 1]), "expected probabilities"),
    (np.ones((2, 2)) / 2, np.array([0, 2]), "labels must lie in 0..1"),
    (np.ones((0, 2)), np.array([], dtype=int), "zero examples"),
])
def test_score_rejects_mismatched_input(probabilities: np.ndarray, labels: np.ndarray,
                                        message: str) -> None:
    with pytest.raises(ValueError, match=message):
        score(probabilities, labels)


def test_evaluation_plots_are_written(tmp_path: Path) -> None:
    generator = np.random.default_rng(0)
    probabilities = generator.dirichlet(np.ones(10), size=50)
    scores = score(probabilities, generator.integers(0, 10, size=50))
    images = generator.integers(0, 256, size=(50, 28, 28), dtype=np.uint8)
    history = {"loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "accuracy": [0.5, 0.8],
               "val_accuracy": [0.4, 0.7]}
    written = reports.write_evaluation_plots(tmp_path, images, scores,
                                             [str(d) for d in range(10)], "t", history)
    assert {p.name for p in written} == {reports.CONFUSION_FILENAME,
                                         reports.MISCLASSIFIED_FILENAME,
                                         reports.CURVES_FILENAME}
    for path in written:
        assert path.read_bytes().startswith(b"\x89PNG")


@dataclass
class _Run:
    variant: str
    seed: int
    train_accuracy: float
    validation_accuracy: float
    test_accuracy: float
    history: dict[str, list[float]] = field(default_factory=dict)

    @property
    def gap(self) -> float:
        return self.train_accuracy - self.test_accuracy


def _runs(validation: dict[str, list[float]]) -> list[_Run]:
    return [_Run(variant, seed, 1.0, accuracy, accuracy - 0.01)
            for variant, values in validation.items()
            for seed, accuracy in enumerate(values)]


def test_summary_has_mean_and_sample_spread() -> None:
    summary = regularization_report.summarize(_runs({"baseline": [0.90, 0.92, 0.94]}),
                                              ["baseline"])
    validation = summary["baseline"]["validation"]
    assert validation["mean"] == pytest.approx(0.92)
    assert validation["std"] == pytest.approx(0.02)
    assert (validation["min"], validation["max"], validation["seeds"]) == (0.90, 0.94, 3)
    assert summary["baseline"]["gap"]["mean"] == pytest.approx(1.0 - 0.91)


def test_conclusion_calls_a_clear_lead_clear() -> None:
    variants = ["baseline", "dropout"]
    summary = regularization_report.summarize(
        _runs({"baseline": [0.90, 0.901, 0.899], "dropout": [0.95, 0.951, 0.949]}), variants)
    text = regularization_report.conclusion(summary, variants, "dropout")
    assert text.startswith("Ranked by mean validation accuracy: dropout, baseline")
    assert "larger than the seed spread" in text and "clear at this budget" in text
    assert "Against the baseline, dropout changes mean test accuracy by +5.00 points" in text


def test_conclusion_says_when_variants_cannot_be_told_apart() -> None:
    variants = ["baseline", "l2"]
    summary = regularization_report.summarize(
        _runs({"baseline": [0.90, 0.94, 0.92], "l2": [0.91, 0.93, 0.915]}), variants)
    text = regularization_report.conclusion(summary, variants, "baseline")
    assert "within the seed spread" in text and "cannot be told apart" in text
    assert "Against the baseline" not in text


def test_markdown_table_has_a_row_per_variant() -> None:
    variants = ["baseline", "all"]
    summary = regularization_report.summarize(
        _runs({"baseline": [0.9, 0.8], "all": [0.7, 0.6]}), variants)
    lines = regularization_report.markdown_table(summary, variants).splitlines()
    assert lines[2] == "| baseline | 100.00 ± 0.00 | 85.00 ± 7.07 | 84.00 ± 7.07 | " \
                       "16.00 ± 7.07 | 2 |"
    assert lines[3].startswith("| all | 100.00 ± 0.00 | 65.00 ± 7.07 |")
