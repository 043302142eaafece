"""The quality gate: a version earns unpinned traffic by classifying a golden set well.

Before a loaded version may become the default, it classifies the golden set (the
operator's ``<models>/<name>/golden.npz`` if there is one, else the version's own), and
passes only if

- its outputs are well formed: one finite probability row per image, each summing to 1;
- its golden accuracy is at least the accuracy its card claims, less ``tolerance`` and
  three standard errors of a sample that size (so a small golden set does not fail a
  good version by chance);
- its golden accuracy is at least the current default version's on the same images, less
  ``margin``, when it is newer than the default (an older version is not taking over);
- its golden accuracy is at least ``min_accuracy``, whatever the card claims (a first
  version has no default to be compared with).

A version without any golden set is not gated (as before gates existed), and says so.
"""

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digits.modelstore import golden
from digits.modelstore.saved_model import LoadedModel
from digits.service.domain import GateResult

# Rows of probabilities may be off by float32 rounding, not by more.
_SUM_TOLERANCE = 1e-3


UNGATED = GateResult(True, "not gated: no golden set in the version or the model directory")


@dataclass(frozen=True)
class Thresholds:
    """How far below its claim, and below the current default, a version may score, and
    the floor for every version."""

    tolerance: float
    margin: float
    min_accuracy: float


def find_golden_set(version_dir: Path, classes: int) -> golden.GoldenSet | None:
    """The golden set for a version: the model directory's, else the version's own."""
    for path in (version_dir.parent / golden.GOLDEN_FILENAME,
                 version_dir / golden.GOLDEN_FILENAME):
        if path.is_file():
            return golden.read(path, classes)
    return None


def evaluate(candidate: LoadedModel, golden_set: golden.GoldenSet | None,
             default: LoadedModel | None, thresholds: Thresholds) -> GateResult:
    """Classify the golden set with the candidate (and the default) and judge it.

    Runs in the loader thread: a golden set of 1,000 images is one model call of a few
    milliseconds for each model.
    """
    if golden_set is None:
        return UNGATED
    started = time.perf_counter()
    probabilities = candidate.predict(golden_set.images)
    malformed = _malformed(probabilities, len(golden_set), len(candidate.labels))
    if malformed:
        return GateResult(False, f"malformed outputs on the golden set: {malformed}",
                          examples=len(golden_set), golden_source=golden_set.source,
                          seconds=time.perf_counter() - started)
    accuracy = _accuracy(probabilities, golden_set.labels)
    default_accuracy = None
    if default is not None and len(default.labels) == len(candidate.labels):
        default_accuracy = _accuracy(default.predict(golden_set.images), golden_set.labels)
    seconds = time.perf_counter() - started
    claimed = candidate.card.test_metrics.get("accuracy")
    reason = judge(accuracy, len(golden_set), claimed, default_accuracy, thresholds)
    return GateResult(not reason, reason or _passed(accuracy, claimed, default_accuracy),
                      accuracy, len(golden_set), seconds, golden_set.source, default_accuracy)


def judge(accuracy: float, examples: int, claimed: float | None,
          default_accuracy: float | None, thresholds: Thresholds) -> str:
    """Why a golden accuracy fails the gate, or '' when it passes."""
    problems = []
    if accuracy < thresholds.min_accuracy:
        problems.append(f"golden accuracy {accuracy:.4f} on {examples} images is below the "
                        f"minimum {thresholds.min_accuracy:g}")
    if claimed is not None:
        standard_error = math.sqrt(max(claimed * (1 - claimed), 0.0) / examples)
        floor = claimed - thresholds.tolerance - 3 * standard_error
        if accuracy < floor:
            problems.append(
                f"golden accuracy {accuracy:.4f} on {examples} images is below {floor:.4f} "
                f"(the card claims {claimed:.4f}, less the tolerance "
                f"{thresholds.tolerance:g} and 3 standard errors)")
    if default_accuracy is not None and accuracy < default_accuracy - thresholds.margin:
        problems.append(
            f"golden accuracy {accuracy:.4f} is below the default version's "
            f"{default_accuracy:.4f} less the margin {thresholds.margin:g}")
    return "; ".join(problems)


def _passed(accuracy: float, claimed: float | None, default_accuracy: float | None) -> str:
    parts = [f"passed: golden accuracy {accuracy:.4f}"]
    if claimed is not None:
        parts.append(f"card claims {claimed:.4f}")
    if default_accuracy is not None:
        parts.append(f"default version {default_accuracy:.4f}")
    return ", ".join(parts)


def _accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(probabilities, axis=1) == labels))


def _malformed(probabilities: np.ndarray, rows: int, classes: int) -> str:
    """What is wrong with a model's outputs on the golden set ('' when nothing)."""
    if probabilities.shape != (rows, classes):
        return f"shape {list(probabilities.shape)}, expected [{rows}, {classes}]"
    if not np.isfinite(probabilities).all():
        return f"{int((~np.isfinite(probabilities)).sum())} values are not finite"
    if probabilities.min() < 0 or probabilities.max() > 1:
        return (f"values range from {probabilities.min():.4g} to {probabilities.max():.4g}, "
                "outside [0, 1]")
    sums = probabilities.sum(axis=1, dtype=np.float64)
    worst = float(np.abs(sums - 1).max())
    if worst > _SUM_TOLERANCE:
        return f"a row sums to {sums[np.abs(sums - 1).argmax()]:.4f}, not 1"
    return ""
