"""``digits evaluate``: recompute the test reports of any exported model version.

The model is loaded exactly as the service loads it (card and file checks, serving
signature), so the figures are those of the served graph.
"""

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from google.protobuf import json_format

from digits.jobs import data, reports
from digits.jobs.pipeline import ALL_DIGITS, JobError
from digits.jobs.scoring import Scores, score
from digits.jobs.version_contents import HISTORY_FILENAME
from digits.modelstore.card import InvalidCard, read_card
from digits.modelstore.saved_model import InvalidModel, LoadedModel, load_version

log = logging.getLogger(__name__)

# Images per model call (bounds memory for convolutional models).
_CHUNK = 1000


@dataclass(frozen=True)
class Evaluation:
    """A recomputed evaluation and where its reports are."""

    report_dir: Path
    scores: Scores
    card_accuracy: float | None
    model: LoadedModel  # as the service loads it
    test: data.Split  # the test images of its digits, labels as class indices
    title: str


def evaluate(version_dir: Path, data_path: Path | None, reports_root: Path,
             data_check: str = "canonical") -> Evaluation:
    """Score ``version_dir`` on the MNIST test images of its digits; write its reports.

    Reports go to ``<reports_root>/evaluate/<name>/<version>/`` (replaced on a rerun).
    """
    try:
        read_card(Path(version_dir))  # fails fast, before TensorFlow loads
        model = load_version(Path(version_dir))
    except (InvalidCard, InvalidModel) as error:
        raise JobError(f"cannot evaluate: {error}") from error
    card = model.card
    digits = tuple(card.dataset.digits) or ALL_DIGITS
    if len(digits) != len(card.labels):
        raise JobError(f"{version_dir}: the card lists digits {list(digits)} but "
                       f"{len(card.labels)} labels; cannot match test images to outputs")
    try:
        mnist = data.load_mnist(data_path, data_check)
    except data.DataError as error:
        raise JobError(str(error)) from error
    trained_on = card.dataset.array_sha256.get("x_test")
    if trained_on and trained_on != mnist.array_sha256["x_test"]:
        log.warning("the test images differ from those %s was evaluated on at export; "
                    "figures are not comparable with its card", version_dir)

    test = data.keep_digits(mnist.test, digits)
    scores = score(probabilities(model, test.images), test.labels)

    report_dir = Path(reports_root) / "evaluate" / card.name / str(card.version)
    try:
        report_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise JobError(f"cannot write reports under {reports_root}: "
                       f"{error.strerror or error}; pass --reports naming a writable "
                       "directory") from error
    history_path = Path(version_dir) / HISTORY_FILENAME
    history = json.loads(history_path.read_text()) if history_path.is_file() else None
    title = f"{card.name} v{card.version} ({card.experiment or 'unknown experiment'})"
    reports.write_evaluation_plots(report_dir, test.images, scores, model.labels, title,
                                   history)
    reports.write_json(report_dir / reports.CONFIG_FILENAME,
                       json_format.MessageToDict(card.training_config))
    card_accuracy = card.test_metrics.get("accuracy")
    reports.write_json(report_dir / reports.METRICS_FILENAME, {
        "model": card.name,
        "version": card.version,
        "version_dir": str(version_dir),
        "data": mnist.source,
        "test": scores.summary(),
        "card_test_accuracy": card_accuracy,
    })
    log.info("%s v%d: test accuracy %.4f on %d images (card says %s); reports in %s",
             card.name, card.version, scores.accuracy, len(test),
             f"{card_accuracy:.4f}" if card_accuracy is not None else "nothing", report_dir)
    return Evaluation(report_dir, scores, card_accuracy, model, test, title)


def probabilities(model: LoadedModel, images: np.ndarray) -> np.ndarray:
    """``model``'s probabilities for uint8 [N, 28, 28] ``images``, in bounded chunks."""
    return np.concatenate([model.predict(images[start:start + _CHUNK])
                           for start in range(0, len(images), _CHUNK)])
