"""Report files of a run: config log, metrics JSON, learning curves, confusion matrix, errors.

Plots use matplotlib's object API (``Figure``, rendered by Agg), never pyplot: the jobs
run headless, in containers and CI, and pyplot's global state is not needed.
"""

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from digits.jobs.scoring import Scores

log = logging.getLogger(__name__)

CONFIG_FILENAME = "config.json"
METRICS_FILENAME = "metrics.json"
CURVES_FILENAME = "learning_curves.png"
CONFUSION_FILENAME = "confusion_matrix.png"
MISCLASSIFIED_FILENAME = "misclassified.png"


def new_run_directory(reports_root: Path, experiment: str) -> Path:
    """A fresh ``<reports>/<experiment>/<UTC time>`` directory (suffixed when taken)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    parent = Path(reports_root) / experiment
    parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, 1000):
        candidate = parent / (stamp if attempt == 1 else f"{stamp}-{attempt}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"no free report directory name under {parent}")


def write_json(path: Path, data: Mapping[str, Any]) -> Path:
    """Write ``data`` as indented JSON (keys in the given order)."""
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


def plot_learning_curves(history: Mapping[str, Sequence[float]], path: Path,
                         title: str) -> Path:
    """Loss and accuracy per epoch, training next to validation."""
    figure = Figure(figsize=(10, 4))
    axes = figure.subplots(1, 2)
    for axis, metric in zip(axes, ("loss", "accuracy"), strict=True):
        for key, label in ((metric, "training"), (f"val_{metric}", "validation")):
            values = history.get(key)
            if values:
                epochs = np.arange(1, len(values) + 1)
                axis.plot(epochs, values, marker="o", markersize=3, label=label)
        axis.set_xlabel("epoch")
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(title)
    return save_figure(figure, path)


def plot_confusion_matrix(confusion: np.ndarray, labels: Sequence[str], path: Path,
                          title: str) -> Path:
    """Counts of (true, predicted) pairs; the diagonal holds the correct answers."""
    size = max(5.0, 0.6 * len(labels) + 2)
    figure = Figure(figsize=(size, size))
    axis = figure.subplots()
    # Log-like colour scale: the diagonal dwarfs the errors, which are what matters.
    axis.imshow(np.log1p(confusion), cmap="Blues")
    ticks = np.arange(len(labels))
    axis.set_xticks(ticks, labels)
    axis.set_yticks(ticks, labels)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    threshold = np.log1p(confusion.max()) / 2
    for row in range(confusion.shape[0]):
        for column in range(confusion.shape[1]):
            count = int(confusion[row, column])
            axis.text(column, row, str(count), ha="center", va="center", fontsize=8,
                      color="white" if np.log1p(count) > threshold else "black")
    axis.set_title(title, fontsize=10)
    return save_figure(figure, path)


def plot_misclassified(images: np.ndarray, scores: Scores, labels: Sequence[str], path: Path,
                       title: str, limit: int = 36) -> Path:
    """Grid of the most confident mistakes: true label, predicted label and confidence."""
    wrong = scores.misclassified[:limit]
    columns = 6
    rows = max(1, -(-len(wrong) // columns))
    figure = Figure(figsize=(columns * 1.6, rows * 1.9 + 0.6))
    axes = figure.subplots(rows, columns, squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, index in zip(axes.flat, wrong, strict=False):
        axis.imshow(images[index], cmap="gray", vmin=0, vmax=255)
        axis.set_title(f"#{index} true {labels[scores.labels[index]]}\n"
                       f"pred {labels[scores.predictions[index]]} "
                       f"({scores.confidence[index]:.2f})", fontsize=8)
    if len(wrong) == 0:
        axes.flat[0].text(0.5, 0.5, "no misclassified images", ha="center", va="center")
    figure.suptitle(f"{title}: {len(scores.misclassified)} misclassified of "
                    f"{len(scores.labels)} (most confident first)")
    return save_figure(figure, path)


def write_evaluation_plots(directory: Path, images: np.ndarray, scores: Scores,
                           labels: Sequence[str], title: str,
                           history: Mapping[str, Sequence[float]] | None) -> list[Path]:
    """The standard plots of a model's test evaluation (and its training, when known)."""
    written = [
        plot_confusion_matrix(scores.confusion, labels, directory / CONFUSION_FILENAME,
                              f"{title}: test accuracy {scores.accuracy:.4f}"),
        plot_misclassified(images, scores, labels, directory / MISCLASSIFIED_FILENAME, title),
    ]
    if history:
        written.append(plot_learning_curves(history, directory / CURVES_FILENAME, title))
    else:
        log.info("no training history: %s not drawn", CURVES_FILENAME)
    return written


def save_figure(figure: Figure, path: Path) -> Path:
    """Write ``figure`` as a PNG."""
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return path
