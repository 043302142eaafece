"""A version's accuracy on corrupted digits (``corruptions``), each image sent through the
service's own decoding and MNIST-style preprocessing, as a file sent to the server would be.

The table holds two clean rows for reference: the raw test pixels (what the model
trained on) and the same digits as PNG files through the preprocessing (what the
preprocessing alone costs or gains).
"""

import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from digits.imaging.files import model_input
from digits.jobs.corruptions import CORRUPTIONS, corrupted_files
from digits.jobs.data import Split
from digits.jobs.evaluate import probabilities
from digits.jobs.reports import save_figure
from digits.modelstore.saved_model import LoadedModel

JSON_FILENAME = "robustness.json"
PLOT_FILENAME = "robustness.png"
TABLE_FILENAME = "robustness.md"
# The goal the training recipes aim at: no corruption below this accuracy.
TARGET_ACCURACY = 0.97


@dataclass(frozen=True)
class RobustnessRow:
    """Accuracy on one kind of image; ``refused`` images the server would have refused as
    blank (counted as wrong)."""

    name: str
    description: str
    accuracy: float
    images: int
    refused: int


def model_inputs(files: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """What the server makes of each file: uint8 [N, 28, 28], and which it refuses."""
    inputs = np.zeros((len(files), 28, 28), np.uint8)
    refused = np.zeros(len(files), bool)
    for index, data in enumerate(files):
        made = model_input(data)  # what the service's decoding does to an encoded image
        if made is None:
            refused[index] = True
        else:
            inputs[index] = made
    return inputs, refused


def _png(digit: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(digit).save(buffer, "PNG")
    return buffer.getvalue()


def _accuracy(model: LoadedModel, pixels: np.ndarray, labels: np.ndarray,
              refused: np.ndarray) -> float:
    predictions = probabilities(model, pixels).argmax(axis=1)
    return float(np.mean((predictions == labels) & ~refused))


def measure(model: LoadedModel, test: Split, seed: int) -> list[RobustnessRow]:
    """Accuracy of ``model`` on ``test`` clean, as PNG files, and under every corruption."""
    nothing_refused = np.zeros(len(test), bool)
    rows = [RobustnessRow("clean", "the test pixels as they are",
                          _accuracy(model, test.images, test.labels, nothing_refused),
                          len(test), 0)]
    for name, description, files in [
            ("clean_png", "the same digits as PNG files, through the preprocessing",
             [_png(digit) for digit in test.images]),
            *((c.name, c.description, corrupted_files(c, test.images, seed))
              for c in CORRUPTIONS)]:
        inputs, refused = model_inputs(files)
        rows.append(RobustnessRow(name, description,
                                  _accuracy(model, inputs, test.labels, refused),
                                  len(test), int(refused.sum())))
    return rows


def table(rows: list[RobustnessRow]) -> str:
    """The rows as a Markdown table."""
    lines = ["| images | what | accuracy | refused as blank |", "| --- | --- | --- | --- |"]
    lines += [f"| {row.name} | {row.description} | {row.accuracy:.4f} | {row.refused} |"
              for row in rows]
    return "\n".join(lines)


def write(directory: Path, rows: list[RobustnessRow], title: str) -> list[Path]:
    """robustness.json, robustness.md and a bar chart of the accuracies."""
    json_path = directory / JSON_FILENAME
    json_path.write_text(json.dumps([asdict(row) for row in rows], indent=2) + "\n")
    table_path = directory / TABLE_FILENAME
    table_path.write_text(f"# Robustness of {title}\n\n{table(rows)}\n")
    figure = Figure(figsize=(8, 0.4 * len(rows) + 1.2))
    axis = figure.subplots()
    names = [row.name for row in rows][::-1]
    accuracies = [row.accuracy for row in rows][::-1]
    colours = ["#cf222e" if value < TARGET_ACCURACY else "#1f6feb" for value in accuracies]
    axis.barh(names, accuracies, color=colours)
    axis.axvline(TARGET_ACCURACY, color="black", linestyle="--", linewidth=1,
                 label=f"goal {TARGET_ACCURACY:.0%}")
    for position, value in enumerate(accuracies):
        axis.text(min(value, 1.0) + 0.005, position, f"{value:.3f}", va="center", fontsize=8)
    axis.set_xlim(0, 1.08)
    axis.set_xlabel("accuracy")
    axis.legend(loc="lower left")
    axis.set_title(f"{title}: accuracy under corruption ({rows[0].images} digits each)")
    return [json_path, table_path, save_figure(figure, directory / PLOT_FILENAME)]
