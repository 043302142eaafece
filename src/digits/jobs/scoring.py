"""Figures from predicted probabilities: accuracy, loss, confusion matrix, the errors."""

from dataclasses import dataclass

import numpy as np

# Probabilities are clipped before the log so one confident mistake cannot give inf.
_EPSILON = 1e-7


@dataclass(frozen=True)
class Scores:
    """How well probabilities [N, C] match labels [N] (class indices)."""

    accuracy: float
    loss: float
    labels: np.ndarray
    predictions: np.ndarray
    confidence: np.ndarray  # probability of the predicted class
    confusion: np.ndarray  # counts, [true class, predicted class]

    @property
    def misclassified(self) -> np.ndarray:
        """Indices of the wrongly classified examples, most confident mistakes first."""
        wrong = np.flatnonzero(self.predictions != self.labels)
        return wrong[np.argsort(-self.confidence[wrong], kind="stable")]

    @property
    def per_class_accuracy(self) -> list[float]:
        """Recall of each class (diagonal over row sums); 0 for a class with no examples."""
        totals = self.confusion.sum(axis=1)
        diagonal = np.diag(self.confusion)
        return [float(d / t) if t else 0.0 for d, t in zip(diagonal, totals, strict=True)]

    def summary(self) -> dict[str, object]:
        """JSON-ready figures (no per-example arrays except the confusion matrix)."""
        return {
            "accuracy": self.accuracy,
            "loss": self.loss,
            "examples": len(self.labels),
            "errors": len(self.misclassified),
            "per_class_accuracy": self.per_class_accuracy,
            "confusion_matrix": self.confusion.tolist(),
        }


def score(probabilities: np.ndarray, labels: np.ndarray) -> Scores:
    """Scores of ``probabilities`` (float [N, C], rows summing to 1) against ``labels``."""
    if probabilities.ndim != 2 or len(probabilities) != len(labels):
        raise ValueError(f"expected probabilities [N, C] for {len(labels)} labels, "
                         f"got shape {probabilities.shape}")
    if len(labels) == 0:
        raise ValueError("cannot score zero examples")
    classes = probabilities.shape[1]
    labels = labels.astype(np.int64)
    if labels.min() < 0 or labels.max() >= classes:
        raise ValueError(f"labels must lie in 0..{classes - 1}, got {labels.min()}..{labels.max()}")
    predictions = probabilities.argmax(axis=1)
    picked = probabilities[np.arange(len(labels)), labels]
    confusion = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(confusion, (labels, predictions), 1)
    return Scores(
        accuracy=float(np.mean(predictions == labels)),
        loss=float(-np.mean(np.log(np.clip(picked, _EPSILON, 1.0)))),
        labels=labels,
        predictions=predictions,
        confidence=probabilities.max(axis=1),
        confusion=confusion,
    )
