"""The volume watcher over a real registry and the server's listeners, with tiny real
models (no gRPC): loading, failures, retirement, health, gauges and the heap."""

import asyncio
import concurrent.futures
import gc
import shutil
import weakref
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from digits.modelstore.saved_model import LoadedModel, load_version
from digits.service.domain import VersionState
from digits.service.errors import ModelNotFound, ModelUnavailable
from digits.service.grpc_api.health import HealthReporter
from digits.service.metrics import ServiceMetrics
from digits.service.models.hooks import HeapHook, PredictorHook, VersionGauges
from digits.service.models.registry import ModelRegistry
from digits.service.models.watcher import Loader, VolumeWatcher
from digits.service.settings import BatchingSettings, VolumeSettings

from support.models import corrupt_copy, install

ONE_IMAGE = np.zeros((1, 28, 28), np.uint8)


class RecordingHealth(HealthReporter):
    """The server's health listener, remembering every status set it applied."""

    def __init__(self, default_model: str) -> None:
        super().__init__(default_model)
        self.seen: list[dict[str, bool]] = []

    async def update(self, models: Mapping[str, bool]) -> None:
        if not self.seen or dict(models) != self.seen[-1]:
            self.seen.append(dict(models))
        await super().update(models)


class Harness:
    """A watcher over ``root`` feeding a registry with the server's own listeners."""

    def __init__(self, root: Path, max_versions: int = 3,
                 loader: Loader = load_version) -> None:
        self.metrics = ServiceMetrics()
        self.executor = concurrent.futures.ThreadPoolExecutor(1)
        self.health = RecordingHealth("mnist")
        self.heap = HeapHook()
        batching = BatchingSettings(max_batch_size=64, batch_timeout=0.0,
                                    max_queue_images=1024)
        self.registry = ModelRegistry([
            PredictorHook(batching, self.metrics, self.executor), self.heap,
            VersionGauges(self.metrics), self.health])
        self.watcher = VolumeWatcher(
            VolumeSettings(models=root, poll_interval=3600, max_versions=max_versions),
            self.registry, self.metrics, loader=loader)

    def states(self, name: str = "mnist") -> dict[int, VersionState]:
        return {v.version: v.state for v in self.registry.status(name).versions}

    def sample(self, name: str, **labels: str) -> float | None:
        return self.metrics.registry.get_sample_value(name, labels)

    async def close(self) -> None:
        await self.watcher.close()
        self.heap.stop()  # as the server does: later tests find the heap thawed
        await self.registry.close()
        self.executor.shutdown()


@pytest.fixture
async def harness(models_root: Path) -> AsyncIterator[Harness]:
    harness = Harness(models_root)
    yield harness
    await harness.close()


async def predict(registry: ModelRegistry, name: str, version: int = 0) -> np.ndarray:
    with registry.acquire(name, version) as served:
        assert served.predictor is not None
        return await served.predictor.predict(ONE_IMAGE)


async def test_newest_version_serves_by_default_and_older_ones_can_be_pinned(
        harness: Harness, models_root: Path, model_templates: Any) -> None:
    install(model_templates.dense_a, models_root, "mnist", 1)
    install(model_templates.dense_b, models_root, "mnist", 3)
    await harness.watcher.scan()
    with harness.registry.acquire("mnist") as served:
        assert served.version == 3
    assert (await predict(harness.registry, "mnist", 1)).shape == (1, 10)
    assert harness.states() == {3: VersionState.AVAILABLE, 1: VersionState.AVAILABLE}
    assert harness.sample("digits_model_versions_loaded", model="mnist") == 2
    assert harness.sample("digits_model_default_version", model="mnist") == 3
    assert harness.health.seen[-1] == {"mnist": True}


@pytest.mark.parametrize("how", ["sha256", "savedmodel", "card"])
async def test_a_broken_version_is_counted_reported_and_disturbs_nothing(
        harness: Harness, models_root: Path, model_templates: Any, how: str) -> None:
    install(model_templates.dense_a, models_root, "mnist", 1)
    await harness.watcher.scan()
    corrupt_copy(model_templates.dense_b, models_root, "mnist", 2, how)
    await harness.watcher.scan()
    await harness.watcher.scan()  # remembered: not retried while unchanged
    with harness.registry.acquire("mnist") as served:
        assert served.version == 1
    status = harness.registry.status("mnist")
    assert [(v.version, v.state) for v in status.versions] == [
        (2, VersionState.FAILED), (1, VersionState.AVAILABLE)]
    assert str(models_root / "mnist" / "2") in status.versions[0].error
    assert harness.sample("digits_model_load_failures_total") == 1
    with pytest.raises(ModelNotFound, match="no version 2 loaded; loaded versions: 1"):
        harness.registry.acquire("mnist", 2).__enter__()


async def test_a_repaired_version_is_retried(
        harness: Harness, models_root: Path, model_templates: Any) -> None:
    broken = corrupt_copy(model_templates.dense_a, models_root, "mnist", 1, "card")
    await harness.watcher.scan()
    assert harness.states() == {1: VersionState.FAILED}
    shutil.rmtree(broken)
    install(model_templates.dense_a, models_root, "mnist", 1)
    await harness.watcher.scan()
    assert harness.states() == {1: VersionState.AVAILABLE}


async def test_a_failed_version_removed_from_disk_is_forgotten(
        harness: Harness, models_root: Path, model_templates: Any) -> None:
    install(model_templates.dense_a, models_root, "mnist", 1)
    broken = corrupt_copy(model_templates.dense_a, models_root, "mnist", 2, "sha256")
    await harness.watcher.scan()
    shutil.rmtree(broken)
    await harness.watcher.scan()
    assert harness.states() == {1: VersionState.AVAILABLE}


async def test_a_removed_version_is_unloaded_only_after_its_requests_finish(
        harness: Harness, models_root: Path, model_templates: Any) -> None:
    install(model_templates.dense_a, models_root, "mnist", 1)
    install(model_templates.dense_b, models_root, "mnist", 2)
    await harness.watcher.scan()
    with harness.registry.acquire("mnist", 2) as in_flight:
        shutil.rmtree(models_root / "mnist" / "2")
        await harness.watcher.scan()
        await asyncio.sleep(0.05)  # give an (early, wrong) unload every chance to run
        # Out of routing at once, yet the running request still computes on it.
        assert harness.states() == {2: VersionState.UNLOADING, 1: VersionState.AVAILABLE}
        with harness.registry.acquire("mnist") as served:
            assert served.version == 1
        assert in_flight.predictor is not None
        assert (await in_flight.predictor.predict(ONE_IMAGE)).shape == (1, 10)
    await harness.registry.close()  # waits for the unload the release started
    assert harness.registry.model_names() == []


async def test_only_the_newest_max_versions_stay_loaded(
        models_root: Path, model_templates: Any) -> None:
    harness = Harness(models_root, max_versions=2)
    try:
        for version in (1, 2, 3):
            install(model_templates.dense_a, models_root, "mnist", version)
        await harness.watcher.scan()
        assert harness.registry.loaded_versions("mnist") == [2, 3]
    finally:
        await harness.close()


async def test_a_model_whose_versions_all_fail_never_becomes_a_metric_label(
        harness: Harness, models_root: Path, model_templates: Any) -> None:
    install(model_templates.dense_a, models_root, "mnist", 1)
    corrupt_copy(model_templates.dense_a, models_root, "broken", 1, "sha256")
    (models_root / "Not-Valid").mkdir()  # invalid directory names are ignored
    await harness.watcher.scan()
    with pytest.raises(ModelUnavailable, match="failed versions: 1"):
        harness.registry.acquire("broken").__enter__()
    assert harness.sample("digits_model_versions_loaded", model="broken") is None
    assert harness.registry.model_names() == ["broken", "mnist"]
    assert harness.health.seen[-1] == {"mnist": True, "broken": False}


async def test_an_unreadable_volume_is_counted_reported_and_keeps_what_is_loaded(
        tmp_path: Path, model_templates: Any) -> None:
    root = tmp_path / "volume"
    install(model_templates.dense_a, root, "mnist", 1)
    harness = Harness(root)
    try:
        await harness.watcher.scan()
        root.rename(tmp_path / "gone")
        await harness.watcher.scan()
        assert harness.sample("digits_model_reload_failures_total", reason="unreadable") == 1
        assert (await predict(harness.registry, "mnist")).shape == (1, 10)
    finally:
        await harness.close()


async def test_a_volume_unreadable_from_the_start_is_named_to_clients(
        tmp_path: Path) -> None:
    harness = Harness(tmp_path / "absent")
    try:
        await harness.watcher.scan()
        with pytest.raises(ModelUnavailable, match=r"cannot read the models directory"):
            harness.registry.acquire("mnist").__enter__()
    finally:
        await harness.close()


async def test_health_follows_the_first_load_and_the_last_removal(
        harness: Harness, models_root: Path, model_templates: Any) -> None:
    await harness.health.start()
    await harness.watcher.scan()
    assert harness.health.seen == [{"mnist": False}]
    install(model_templates.dense_a, models_root, "mnist", 1)
    await harness.watcher.scan()
    assert harness.health.seen[-1] == {"mnist": True}
    shutil.rmtree(models_root / "mnist" / "1")
    await harness.watcher.scan()
    assert harness.health.seen[-1] == {"mnist": False}
    with pytest.raises(ModelUnavailable):
        harness.registry.acquire("mnist").__enter__()


class _CyclicModel(LoadedModel):
    """A loaded model held together by a reference cycle, as TensorFlow's objects are."""

    def __init__(self, model: LoadedModel) -> None:
        super().__init__(model.path, model.card, model._signature, model._module)
        self.cycle = self


async def test_loaded_models_skip_collections_and_are_reclaimed_once_unloaded(
        models_root: Path, model_templates: Any) -> None:
    references: list[weakref.ref[LoadedModel]] = []

    def load_cyclic(path: Path) -> LoadedModel:
        model = _CyclicModel(load_version(path))
        references.append(weakref.ref(model))
        return model

    harness = Harness(models_root, loader=load_cyclic)
    try:
        install(model_templates.dense_a, models_root, "mnist", 1)
        await harness.watcher.scan()
        # Frozen: the collector's generations, which full collections walk, lack it.
        assert not any(tracked is references[0]() for tracked in gc.get_objects())
        shutil.rmtree(models_root / "mnist" / "1")
        await harness.watcher.scan()
        for _ in range(200):  # the unload runs in the background: at most 10 s
            if references[0]() is None:
                break
            await asyncio.sleep(0.05)
        # Only a collection after unfreezing reclaims a cycle that was frozen.
        assert references[0]() is None
    finally:
        await harness.close()
