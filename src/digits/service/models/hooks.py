"""What a version's load and unload set off: its predictor, the heap, the version gauges.

Each is a registry listener, wired by the server in this order: a version gets its
predictor (batched or not, per the settings) before it takes traffic; the heap is
collected and frozen after every load and unload; the gauges follow every change.
"""

import asyncio
import concurrent.futures

from digits.service.batching import make_predictor
from digits.service.metrics import ServiceMetrics
from digits.service.models import heap
from digits.service.models.registry import ModelRegistry, ModelVersion, RegistryListener
from digits.service.prediction_metrics import PredictionRecorder
from digits.service.settings import BatchingSettings


class PredictorHook(RegistryListener):
    """Gives each loaded version its predictor; the registry closes it at unload."""

    def __init__(self, settings: BatchingSettings, metrics: ServiceMetrics,
                 executor: concurrent.futures.Executor) -> None:
        self._settings = settings
        self._metrics = metrics
        self._executor = executor

    async def on_load(self, version: ModelVersion) -> None:
        assert version.model is not None  # a loading version always has its model
        version.predictor = make_predictor(
            version.model.predict, self._settings, self._metrics.batching(version.name),
            self._executor, name=version.name)


class HeapHook(RegistryListener):
    """Keeps loaded models out of the garbage collector's full collections (see ``heap``)."""

    def __init__(self) -> None:
        self.active = True  # off while the server shuts down: one thaw at the end suffices

    async def on_load(self, version: ModelVersion) -> None:
        if self.active:
            await asyncio.to_thread(heap.refreeze)

    async def on_unload(self, version: ModelVersion) -> None:
        if self.active:  # the version's model is released: its cycles can be reclaimed
            await asyncio.to_thread(heap.refreeze)

    def stop(self) -> None:
        """Stop refreezing and give every frozen object back to the collector."""
        self.active = False
        heap.thaw()


class VersionGauges(RegistryListener):
    """Loaded versions and the default version per model, for names that have loaded once
    (so a name that never loaded is never a label)."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self._metrics = metrics
        self._labelled: set[str] = set()

    async def on_load(self, version: ModelVersion) -> None:
        self._labelled.add(version.name)

    async def on_change(self, registry: ModelRegistry) -> None:
        self._metrics.label_info.clear()
        for name in self._labelled:
            loaded = registry.loaded_versions(name)
            self._metrics.loaded_versions.labels(model=name).set(len(loaded))
            self._metrics.default_version.labels(model=name).set(
                registry.default_version(name))
            for label, version in registry.routed_labels(name).items():
                self._metrics.label_info.labels(model=name, label=label,
                                                version=str(version)).set(1)


class PredictionSeries(RegistryListener):
    """Removes an unloaded version's prediction series, so they stay bounded by the
    versions loaded."""

    def __init__(self, recorder: PredictionRecorder) -> None:
        self._recorder = recorder

    async def on_unload(self, version: ModelVersion) -> None:
        self._recorder.forget(version.name, version.version)
