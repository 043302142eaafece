"""The canary guard: stops a canary that does worse than stable, without waiting for a
person.

Over tumbling windows of ``canary_window`` seconds it counts, for the versions that the
``stable`` and ``canary`` labels route to, the images classified, those predicted with a
confidence of at most 0.5, and the model calls that failed. Once both have classified
``canary_min_images`` in a window, a canary whose low-confidence share or failure share
exceeds stable's by more than ``canary_max_excess`` is halted: this server sends it no
more unpinned requests (its weight counts as 0), logs why, counts it, and GetModel shows
the reason, until the labels file next changes the canary. Requests naming the label
still reach it.
"""

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from digits.modelstore.labels import CANARY, STABLE
from digits.service.metrics import ServiceMetrics
from digits.service.models.registry import ModelRegistry
from digits.service.settings import VolumeSettings

log = logging.getLogger(__name__)

LOW_CONFIDENCE = 0.5


@dataclass
class _Tally:
    images: int = 0
    low: int = 0  # predictions of confidence at most LOW_CONFIDENCE
    calls: int = 0
    failed: int = 0

    def shares(self) -> tuple[float, float]:
        return self.low / max(self.images, 1), self.failed / max(self.calls, 1)


@dataclass
class _Window:
    started: float
    versions: tuple[int, int]  # (stable, canary) the tallies are of
    tallies: dict[str, _Tally] = field(default_factory=lambda: {STABLE: _Tally(),
                                                                CANARY: _Tally()})


class CanaryGuard:
    """Compares each model's canary with its stable version, and halts a worse canary."""

    def __init__(self, settings: VolumeSettings, registry: ModelRegistry,
                 metrics: ServiceMetrics) -> None:
        self._window = settings.canary_window
        self._min_images = settings.canary_min_images
        self._max_excess = settings.canary_max_excess
        self._registry = registry
        self._metrics = metrics
        self._windows: dict[str, _Window] = {}

    def observe(self, model: str, version: int, probabilities: np.ndarray | None) -> None:
        """One model call of ``version``: its probabilities, or None when it failed."""
        contest = self._registry.canary_contest(model)  # on every call: no copies
        if contest is None or version not in contest:
            return
        role = STABLE if version == contest[0] else CANARY
        window = self._current(model, contest)
        tally = window.tallies[role]
        tally.calls += 1
        if probabilities is None:
            tally.failed += 1
        else:
            tally.images += len(probabilities)
            tally.low += int((probabilities.max(axis=1) <= LOW_CONFIDENCE).sum())
        self._judge(model, window)

    def _current(self, model: str, versions: tuple[int, int]) -> _Window:
        now = time.monotonic()
        window = self._windows.get(model)
        if window is None or window.versions != versions or now - window.started > self._window:
            window = self._windows[model] = _Window(now, versions)
        return window

    def _judge(self, model: str, window: _Window) -> None:
        stable, canary = window.tallies[STABLE], window.tallies[CANARY]
        if min(stable.images, canary.images) < self._min_images:
            return
        (stable_low, stable_failed), (canary_low, canary_failed) = (stable.shares(),
                                                                    canary.shares())
        if canary_low - stable_low > self._max_excess:
            why = (f"low-confidence share {canary_low:.3f} against stable's "
                   f"{stable_low:.3f}")
        elif canary_failed - stable_failed > self._max_excess:
            why = f"failed model calls {canary_failed:.3f} against stable's {stable_failed:.3f}"
        else:
            return
        reason = (f"canary version {window.versions[1]} halted: {why} over "
                  f"{canary.images} and {stable.images} images (more than "
                  f"{self._max_excess:g} worse); publish a better canary or change its "
                  "label to resume")
        self._registry.halt_canary(model, reason)
        self._metrics.canary_halts.labels(model=model).inc()
        log.warning("%s: %s", model, reason)
        del self._windows[model]
