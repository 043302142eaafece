"""Training a Keras model on prepared splits, the same way for every Keras experiment."""

import logging
import time
from typing import Any

import numpy as np

from digits.jobs.data import Split
from digits.jobs.pipeline import keras_verbosity, scaled
from digits.jobs.tracking import RunLog, keras_callback

log = logging.getLogger(__name__)


def fit(model: Any, train: Split, validation: Split, *, epochs: int, batch_size: int,
        targets: str = "sparse", callbacks: list[Any] | None = None,
        run_log: RunLog | None = None) -> tuple[dict[str, list[float]], float]:
    """Fit on ``train``, watching ``validation`` each epoch; return (history, seconds).

    ``targets`` is ``"sparse"`` (integer classes) or ``"binary"`` (0.0/1.0 floats for a
    sigmoid unit). Keras shuffles each epoch from the global seed, so runs repeat. Each
    epoch's figures go to ``run_log`` (TensorBoard) as they come.
    """
    def labels(split: Split) -> np.ndarray:
        return split.labels.astype(np.float32) if targets == "binary" else split.labels

    started = time.monotonic()
    result = model.fit(
        scaled(train.images), labels(train),
        validation_data=(scaled(validation.images), labels(validation)),
        epochs=epochs, batch_size=batch_size, shuffle=True,
        callbacks=[*(callbacks or []), *([keras_callback(run_log)] if run_log else [])],
        verbose=keras_verbosity(),
    )
    seconds = time.monotonic() - started
    history = {key: [float(value) for value in values]
               for key, values in result.history.items()}
    log.info("trained %d epochs in %.0f s", len(history.get("loss", [])), seconds)
    return history, seconds


def accuracy(model: Any, split: Split, targets: str = "sparse") -> float:
    """Accuracy of ``model`` on ``split`` in inference mode (dropout off, BatchNorm frozen)."""
    probabilities = model.predict(scaled(split.images), batch_size=1000, verbose=0)
    if targets == "binary":
        predictions = (probabilities[:, 0] >= 0.5).astype(np.int64)
    else:
        predictions = probabilities.argmax(axis=1)
    return float(np.mean(predictions == split.labels))
