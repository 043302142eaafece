"""What each model predicts, counted for drift monitoring: labels and confidences."""

from collections.abc import Sequence

import numpy as np
from prometheus_client import Counter

from digits.service.metrics import ServiceMetrics

# Below this many images, plain calls beat the fixed cost of the vectorised NumPy path.
FEW_IMAGES = 8


class PredictionMetrics:
    """One model's prediction metrics, its labelled children bound once.

    ``labels()`` takes a lock and a dictionary lookup per call, which a single-image
    request would pay three times; a label's child is bound when it is first predicted,
    so the label set stays that of the predictions made.
    """

    def __init__(self, metrics: ServiceMetrics, model: str, labels: Sequence[str]) -> None:
        self._model = model
        self._labels = tuple(labels)
        self._predictions = metrics.predictions
        self._images = metrics.images_classified.labels(model=model)
        self._confidence = metrics.confidence.labels(model=model)
        self._by_label: list[Counter | None] = [None] * len(self._labels)

    def record(self, probabilities: np.ndarray) -> None:
        """Count the images and their predicted labels; observe the confidences."""
        indices = probabilities.argmax(axis=1)
        confidences = probabilities[np.arange(len(indices)), indices]
        self._images.inc(len(indices))
        if len(indices) < FEW_IMAGES:
            for index, confidence in zip(indices.tolist(), confidences.tolist(), strict=True):
                self._label(index).inc()
                self._confidence.observe(confidence)
            return
        counts = np.bincount(indices, minlength=len(self._labels))
        for index in np.flatnonzero(counts).tolist():
            self._label(index).inc(int(counts[index]))
        self._confidence.observe_many(confidences)

    def _label(self, index: int) -> Counter:
        child = self._by_label[index]
        if child is None:
            child = self._predictions.labels(model=self._model, label=self._labels[index])
            self._by_label[index] = child
        return child


class PredictionRecorder:
    """Prediction metrics of every model, made on first use (one per model and label set)."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self._metrics = metrics
        self._by_model: dict[tuple[str, tuple[str, ...]], PredictionMetrics] = {}

    def record(self, model: str, labels: tuple[str, ...], probabilities: np.ndarray) -> None:
        """Count one answer of ``model`` (a loaded model's name: labels stay bounded)."""
        recorder = self._by_model.get((model, labels))
        if recorder is None:
            recorder = PredictionMetrics(self._metrics, model, labels)
            self._by_model[(model, labels)] = recorder
        recorder.record(probabilities)
