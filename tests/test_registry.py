"""The model registry alone (no gRPC): loading, routing, failures, retirement, health."""

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
from service_support import corrupt_copy, install

from digits.modelstore.saved_model import LoadedModel, load_version
from digits.service.batching import Batcher
from digits.service.errors import InvalidInput, ModelNotFound, ModelUnavailable
from digits.service.metrics import ServiceMetrics
from digits.service.registry import Loader, ModelRegistry, VersionState

ONE_IMAGE = np.zeros((1, 28, 28), np.uint8)


class Harness:
    """A registry over ``root`` with real batchers, and what it reported."""

    def __init__(self, root: Path, max_versions: int = 3,
                 loader: Loader = load_version) -> None:
        self.metrics = ServiceMetrics()
        self.executor = concurrent.futures.ThreadPoolExecutor(1)
        self.health: list[dict[str, bool]] = []
        self.registry = ModelRegistry(
            root, metrics=self.metrics, make_batcher=self._batcher, default_model="mnist",
            poll_interval=3600, max_versions=max_versions, on_health_change=self._record,
            loader=loader)

    def _batcher(self, name: str, model: LoadedModel) -> Batcher:
        return Batcher(model.predict, model=name, metrics=self.metrics,
                       executor=self.executor, max_batch_size=64, batch_timeout=0.0,
                       max_queue_images=1024)

    async def _record(self, health: Mapping[str, bool]) -> None:
        self.health.append(dict(health))

    def states(self, name: str = "mnist") -> dict[int, VersionState]:
        return {v.version: v.state for v in self.registry.status(name).versions}

    def sample(self, name: str, **labels: str) -> float | None:
        return self.metrics.registry.get_sample_value(name, labels)


@pytest.fixture
async def harness(models_root: Path) -> AsyncIterator[Harness]:
    harness = Harness(models_root)
    yield harness
    await harness.registry.close()
    harness.executor.shutdown()


async def test_newest_version_serves_by_default_and_older_ones_can_be_pinned(
        harness: Harness, models_root: Path, model_templates: Any) -> None:
    install(model_templates.dense_a, models_root, "mnist", 1)
    install(model_templates.dense_b, models_root, "mnist", 3)
    await harness.registry.scan()
    with harness.registry.acquire("", 0) as served:
        assert (served.name, served.version) == ("mnist", 3)
    with harness.registry.acquire("mnist", 1) as served:
        assert served.version == 1
        assert (await served.batcher.predict(ONE_IMAGE)).shape == (1, 10)
    assert harness.states() == {3: VersionState.AVAILABLE, 1: VersionState.AVAILABLE}
    assert harness.sample("digits_model_versions_loaded", model="mnist") == 2
    assert harness.sample("digits_model_default_version", model="mnist") == 3
    assert harness.health[-1] == {"mnist": True}


@pytest.mark.parametrize("how", ["sha256", "savedmodel", "card"])
async def test_a_broken_version_is_counted_reported_and_disturbs_nothing(
        harness: Harness, models_root: Path, model_templates: Any, how: str) -> None:
    install(model_templates.dense_a, models_root, "mnist", 1)
    await harness.registry.scan()
    corrupt_copy(model_templates.dense_b, models_root, "mnist", 2, how)
    await harness.registry.scan()
    await harness.registry.scan()  # remembered: not retried while unchanged
    with harness.registry.acquire("mnist", 0) as served:
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
    await harness.registry.scan()
    assert harness.states() == {1: VersionState.FAILED}
    shutil.rmtree(broken)
    install(model_templates.dense_a, models_root, "mnist", 1)
    await harness.registry.scan()
    assert harness.states() == {1: VersionState.AVAILABLE}


async def test_a_removed_version_is_unloaded_only_after_its_requests_finish(
        harness: Harness, models_root: Path, model_templates: Any) -> None:
    install(model_templates.dense_a, models_root, "mnist", 1)
    install(model_templates.dense_b, models_root, "mnist", 2)
    await harness.registry.scan()
    with harness.registry.acquire("mnist", 2) as in_flight:
        shutil.rmtree(models_root / "mnist" / "2")
        await harness.registry.scan()
        await asyncio.sleep(0.05)  # give an (early, wrong) unload every chance to run
        # Out of routing at once, yet the running request still computes on it.
        assert harness.states() == {2: VersionState.UNLOADING, 1: VersionState.AVAILABLE}
        with harness.registry.acquire("mnist", 0) as served:
            assert served.version == 1
        assert (await in_flight.batcher.predict(ONE_IMAGE)).shape == (1, 10)
    await harness.registry.close()  # waits for the unload the release started
    assert harness.registry.model_names() == []


async def test_only_the_newest_max_versions_stay_loaded(
        models_root: Path, model_templates: Any) -> None:
    harness = Harness(models_root, max_versions=2)
    try:
        for version in (1, 2, 3):
            install(model_templates.dense_a, models_root, "mnist", version)
        await harness.registry.scan()
        assert sorted(v for v, s in harness.states().items()
                      if s == VersionState.AVAILABLE) == [2, 3]
    finally:
        await harness.registry.close()
        harness.executor.shutdown()


async def test_names_are_validated_and_unknown_ones_list_what_exists(
        harness: Harness, models_root: Path, model_templates: Any) -> None:
    with pytest.raises(ModelUnavailable, match="no model is loaded yet"):
        harness.registry.acquire("mnist", 0).__enter__()
    install(model_templates.dense_a, models_root, "mnist", 1)
    install(model_templates.dense_a, models_root, "other", 1)
    (models_root / "Not-Valid").mkdir()  # invalid directory names are ignored
    await harness.registry.scan()
    assert harness.registry.model_names() == ["mnist", "other"]
    for name in ("../mnist", "MNIST", "a" * 64, "mnist/1"):
        with pytest.raises(InvalidInput, match="model: invalid model name"):
            harness.registry.acquire(name, 0).__enter__()
    with pytest.raises(ModelNotFound, match="available models: mnist, other"):
        harness.registry.acquire("fashion", 0).__enter__()
    with pytest.raises(InvalidInput, match="version: -1"):
        harness.registry.acquire("mnist", -1).__enter__()


async def test_a_model_whose_versions_all_fail_is_unavailable_not_missing(
        harness: Harness, models_root: Path, model_templates: Any) -> None:
    install(model_templates.dense_a, models_root, "mnist", 1)
    corrupt_copy(model_templates.dense_a, models_root, "broken", 1, "sha256")
    await harness.registry.scan()
    with pytest.raises(ModelUnavailable, match="failed versions: 1"):
        harness.registry.acquire("broken", 0).__enter__()
    # A name that never loaded never becomes a metric label.
    assert harness.sample("digits_model_versions_loaded", model="broken") is None
    assert harness.health[-1] == {"mnist": True, "broken": False}


async def test_an_unreadable_volume_is_counted_and_keeps_what_is_loaded(
        tmp_path: Path, model_templates: Any) -> None:
    root = tmp_path / "volume"
    install(model_templates.dense_a, root, "mnist", 1)
    harness = Harness(root)
    try:
        await harness.registry.scan()
        root.rename(tmp_path / "gone")
        await harness.registry.scan()
        assert harness.sample("digits_model_reload_failures_total") == 1
        with harness.registry.acquire("mnist", 0) as served:
            assert served.version == 1
    finally:
        await harness.registry.close()
        harness.executor.shutdown()


async def test_health_follows_the_first_load_and_the_last_removal(
        harness: Harness, models_root: Path, model_templates: Any) -> None:
    await harness.registry.scan()
    assert harness.health == [{"mnist": False}]
    install(model_templates.dense_a, models_root, "mnist", 1)
    await harness.registry.scan()
    assert harness.health[-1] == {"mnist": True}
    shutil.rmtree(models_root / "mnist" / "1")
    await harness.registry.scan()
    assert harness.health[-1] == {"mnist": False}
    with pytest.raises(ModelUnavailable):
        harness.registry.acquire("mnist", 0).__enter__()


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
        await harness.registry.scan()
        # Frozen: the collector's generations, which full collections walk, lack it.
        assert not any(tracked is references[0]() for tracked in gc.get_objects())
        shutil.rmtree(models_root / "mnist" / "1")
        await harness.registry.scan()
        for _ in range(200):  # the unload runs in the background: at most 10 s
            if references[0]() is None:
                break
            await asyncio.sleep(0.05)
        # Only a collection after unfreezing reclaims a cycle that was frozen.
        assert references[0]() is None
    finally:
        await harness.registry.close()
        harness.executor.shutdown()
