"""Model calls for the data plane: batched (``Batcher``) or one by one (``UnbatchedPredictor``).

``make_predictor`` picks one from the settings when a version loads; the flush rule of
the batcher is a pure policy of its own (``policy``).
"""

import concurrent.futures

from digits.service.batching.batcher import Batcher
from digits.service.batching.predictor import Predict, Predictor
from digits.service.batching.unbatched import UnbatchedPredictor
from digits.service.metrics import BatchMetrics
from digits.service.settings import BatchingSettings

__all__ = ["Batcher", "Predictor", "UnbatchedPredictor", "make_predictor"]


def make_predictor(predict: Predict, settings: BatchingSettings, metrics: BatchMetrics,
                   executor: concurrent.futures.Executor, *, name: str) -> Predictor:
    """A batcher when batching is on, else a predictor running each request alone."""
    kind = Batcher if settings.enabled else UnbatchedPredictor
    return kind(predict, settings, metrics, executor, name=name)
