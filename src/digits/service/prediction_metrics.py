"""What each model predicts, counted for drift monitoring: labels and confidences."""

import contextlib
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

    def __init__(self, metrics: ServiceMetrics, model: str, version: int,
                 labels: Sequence[str]) -> None:
        self._metrics = metrics
        self._model, self._version = model, str(version)
        self._labels = tuple(labels)
        self._predictions = metrics.predictions
        self._images = metrics.images_classified.labels(model=model, version=self._version)
        self._ok = metrics.model_calls.labels(model=model, version=self._version, result="ok")
        self._confidence = metrics.confidence.labels(model=model, version=self._version)
        self._by_label: list[Counter | None] = [None] * len(self._labels)

    def record(self, probabilities: np.ndarray) -> None:
        """Count the images and their predicted labels; observe the confidences."""
        indices = probabilities.argmax(axis=1)
        confidences = probabilities[np.arange(len(indices)), indices]
        self._ok.inc()
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
            child = self._predictions.labels(model=self._model, version=self._version,
                                             label=self._labels[index])
            self._by_label[index] = child
        return child


    def remove(self) -> None:
        """Drop this version's series."""
        self._metrics.images_classified.remove(self._model, self._version)
        self._metrics.confidence.remove(model=self._model, version=self._version)
        for index, child in enumerate(self._by_label):
            if child is not None:
                self._predictions.remove(self._model, self._version, self._labels[index])


class PredictionRecorder:
    """Prediction metrics of every loaded version, made on first use (one per model,
    version and label set) and removed when the version unloads."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self._metrics = metrics
        self._by_version: dict[tuple[str, int, tuple[str, ...]], PredictionMetrics] = {}

    def record(self, model: str, version: int, labels: tuple[str, ...],
               probabilities: np.ndarray) -> None:
        """Count one answer of a loaded version (its name and number: labels stay
        bounded)."""
        key = (model, version, labels)
        recorder = self._by_version.get(key)
        if recorder is None:
            recorder = PredictionMetrics(self._metrics, model, version, labels)
            self._by_version[key] = recorder
        recorder.record(probabilities)

    def failed(self, model: str, version: int) -> None:
        """Count a model call of a loaded version that failed."""
        self._metrics.model_calls.labels(model=model, version=str(version),
                                         result="failed").inc()

    def forget(self, model: str, version: int) -> None:
        """Remove the series of a version that has unloaded."""
        for key in [key for key in self._by_version if key[:2] == (model, version)]:
            self._by_version.pop(key).remove()
        for result in ("ok", "failed"):
            with contextlib.suppress(KeyError):  # a result it never had
                self._metrics.model_calls.remove(model, str(version), result)
