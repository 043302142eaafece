"""What a job puts into the version it exports besides the model: the card, the
training history, the quality gate's golden set and the run's report files."""

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from digits.jobs.data import Split
from digits.jobs.scoring import Scores
from digits.modelstore import golden
from digits.modelstore.report_files import is_report_file, report_path
from digits.v1.model_card_pb2 import DatasetFingerprint, ModelCard

HISTORY_FILENAME = "training_history.json"
# The card's test_metrics key of each class's accuracy (recall): "class_accuracy/7".
CLASS_ACCURACY_PREFIX = "class_accuracy/"


def card(experiment: str, config: Mapping[str, Any], description: str, labels: list[str],
         dataset: DatasetFingerprint, test_scores: Scores) -> ModelCard:
    """What the job knows about the model it exports (export fills in the rest)."""
    model_card = ModelCard(experiment=experiment, description=description, labels=labels)
    model_card.training_config.update(config)
    model_card.dataset.CopyFrom(dataset)
    model_card.test_metrics.update({"accuracy": test_scores.accuracy,
                                    "loss": test_scores.loss,
                                    "examples": float(len(test_scores.labels))})
    model_card.test_metrics.update({
        f"{CLASS_ACCURACY_PREFIX}{label}": accuracy for label, accuracy
        in zip(labels, test_scores.per_class_accuracy, strict=True)})
    return model_card


def extra_files(history: Mapping[str, Sequence[float]], test: Split, seed: int,
                report_dir: Path) -> dict[str, bytes]:
    """The files exported beside the model, by their path in the version."""
    history_json = json.dumps({key: list(map(float, values))
                               for key, values in history.items()}, indent=1)
    # The service's quality gate checks the version against this sample of the very test
    # set the card's accuracy was measured on.
    golden_set = golden.encode(*golden.sample(test.images, test.labels, seed=seed))
    return {HISTORY_FILENAME: history_json.encode(), golden.GOLDEN_FILENAME: golden_set,
            **report_files(report_dir)}


def report_files(report_dir: Path) -> dict[str, bytes]:
    """The run's plots and tables, to travel inside the exported version."""
    return {report_path(path.name): path.read_bytes()
            for path in sorted(report_dir.iterdir())
            if path.is_file() and is_report_file(report_path(path.name))}
