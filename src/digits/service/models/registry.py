"""The model registry: watches the model volume, loads and swaps versions, routes requests.

Every ``poll_interval`` seconds it lists ``<models>/<name>/<version>/`` and, off the event
loop, validates and loads new versions with ``modelstore.saved_model.load_version``
(card, sha256 of every file, serving signature) plus one warm-up call. The newest
``max_versions`` valid versions of each model stay loaded; the newest serves requests that
pin no version. A version that fails is logged, counted and remembered (it is retried only
if its card changes), and disturbs nothing. A version removed from disk, or pushed out by
newer ones, leaves the routing table at once but is unloaded only when its in-flight
requests have finished, so a swap never fails a request. After every load and unload
the heap is collected and frozen (``heap.refreeze``), so loaded models cost the garbage
collector nothing while serving.
"""

import asyncio
import concurrent.futures
import contextlib
import enum
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from digits.modelstore import volume
from digits.modelstore.card import CARD_FILENAME
from digits.modelstore.names import InvalidModelName, validate_model_name
from digits.modelstore.saved_model import LoadedModel, load_version
from digits.modelstore.signature import IMAGE_SIZE
from digits.service import heap
from digits.service.batching import Batcher
from digits.service.errors import InvalidInput, ModelNotFound, ModelUnavailable
from digits.service.metrics import ServiceMetrics
from digits.v1.model_card_pb2 import ModelCard

log = logging.getLogger(__name__)

# Identifies one published state of a version directory: (inode, mtime_ns, size) of its
# card, which publishing writes last. A changed fingerprint means a new attempt is due.
Fingerprint = tuple[int, int, int]
MakeBatcher = Callable[[str, LoadedModel], Batcher]
HealthListener = Callable[[Mapping[str, bool]], Awaitable[None]]
Loader = Callable[[Path], LoadedModel]


class VersionState(enum.Enum):
    """Lifecycle of one model version in the registry."""

    LOADING = "loading"
    AVAILABLE = "available"
    UNLOADING = "unloading"
    FAILED = "failed"


@dataclass(eq=False)
class ServedVersion:
    """A loaded version with its batcher; ``in_flight`` counts requests using it."""

    name: str
    version: int
    model: LoadedModel
    batcher: Batcher
    fingerprint: Fingerprint
    in_flight: int = 0
    retiring: bool = False
    unloading: bool = False

    @property
    def labels(self) -> tuple[str, ...]:
        return self.model.labels

    @property
    def card(self) -> ModelCard:
        return self.model.card


@dataclass
class VersionStatus:
    """What ListModels/GetModel report about one version."""

    version: int
    state: VersionState
    error: str = ""
    card: ModelCard | None = None


@dataclass
class ModelStatus:
    """What ListModels/GetModel report about one model."""

    name: str
    default_version: int
    versions: list[VersionStatus]
    default_card: ModelCard | None


@dataclass
class _Model:
    """Registry state of one model name."""

    name: str
    served: dict[int, ServedVersion] = field(default_factory=dict)
    failed: dict[int, tuple[Fingerprint, str]] = field(default_factory=dict)
    loading: set[int] = field(default_factory=set)
    retiring: dict[int, ServedVersion] = field(default_factory=dict)
    ever_loaded: bool = False  # from then on its name may be a metric label

    @property
    def known(self) -> bool:
        """True while some version is loaded, loading, unloading or failed."""
        return bool(self.served or self.failed or self.loading or self.retiring)

    @property
    def default(self) -> ServedVersion | None:
        return self.served[max(self.served)] if self.served else None


class ModelRegistry:
    """Loaded model versions of a models directory, kept in step with the disk."""

    def __init__(
        self,
        root: Path,
        *,
        metrics: ServiceMetrics,
        make_batcher: MakeBatcher,
        default_model: str,
        poll_interval: float,
        max_versions: int,
        on_health_change: HealthListener | None = None,
        loader: Loader = load_version,
    ) -> None:
        self._root = Path(root)
        self._metrics = metrics
        self._make_batcher = make_batcher
        self._default_model = validate_model_name(default_model)
        self._poll_interval = poll_interval
        self._max_versions = max_versions
        self._on_health_change = on_health_change
        self._loader = loader
        self._models: dict[str, _Model] = {}
        self._on_disk: set[str] = set()
        # One thread: disk scans and TensorFlow loads stay off the event loop and never
        # compete with each other for the loader.
        self._executor = concurrent.futures.ThreadPoolExecutor(1, "digits-loader")
        self._scan_lock = asyncio.Lock()
        self._poller: asyncio.Task[None] | None = None
        self._unloads: set[asyncio.Task[None]] = set()
        self._last_health: dict[str, bool] = {}
        self._volume_error: str | None = None
        self._closing = False

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Start polling; the first scan runs at once, in the background."""
        if self._poller is None:
            self._poller = asyncio.get_running_loop().create_task(
                self._poll_forever(), name="digits-registry-poll")

    async def close(self) -> None:
        """Stop polling and unload every version (call after the server stopped)."""
        self._closing = True  # no collection per unload: one thaw at the end suffices
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        async with self._scan_lock:
            for model in self._models.values():
                for served in list(model.served.values()):
                    self._retire(model, served)
        for model in self._models.values():
            for served in list(model.retiring.values()):
                self._start_unload(model, served)
        if self._unloads:
            await asyncio.gather(*self._unloads, return_exceptions=True)
        # A load may still be running in the loader thread: wait for it off the loop.
        await asyncio.to_thread(self._executor.shutdown, wait=True)
        heap.thaw()

    async def _poll_forever(self) -> None:
        while True:
            try:
                await self.scan()
            except Exception:  # a bug in one scan must not end polling for good
                self._metrics.reload_failures.inc()
                log.exception("scan of %s failed; trying again in %.1f s", self._root,
                              self._poll_interval)
            await asyncio.sleep(self._poll_interval)

    # -- requests ---------------------------------------------------------------------

    @contextlib.contextmanager
    def acquire(self, name: str, version: int = 0) -> Iterator[ServedVersion]:
        """The version serving a request; it stays loaded until the block exits.

        ``name`` empty means the default model, ``version`` 0 the newest loaded one.
        Raises InvalidInput, ModelNotFound or ModelUnavailable with the fix.
        """
        served = self._resolve(name, version)
        served.in_flight += 1
        try:
            yield served
        finally:
            served.in_flight -= 1
            if served.retiring and served.in_flight == 0:
                self._start_unload(self._models[served.name], served)

    def _resolve(self, name: str, version: int) -> ServedVersion:
        model = self._model_for_request(name)
        if version < 0:
            raise InvalidInput(
                f"version: {version} is not a version; send 0 for the newest or a positive "
                "version number")
        if not model.served:
            raise ModelUnavailable(
                f"model {model.name!r} has no loaded version yet"
                + self._failures_note(model) + "; retry once a version has loaded")
        if version == 0:
            return model.served[max(model.served)]
        served = model.served.get(version)
        if served is None:
            loaded = ", ".join(str(v) for v in sorted(model.served))
            raise ModelNotFound(
                f"version: model {model.name!r} has no version {version} loaded; loaded "
                f"versions: {loaded} (send 0 for the newest)")
        return served

    def _model_for_request(self, name: str) -> _Model:
        """The model a request names, validated before it is used anywhere."""
        name = name or self._default_model
        try:
            validate_model_name(name)
        except InvalidModelName as error:
            raise InvalidInput(f"model: {error}") from None
        model = self._models.get(name)
        if model is not None and model.known:
            return model
        if not self.serving:
            raise ModelUnavailable(
                "no model is loaded yet (the server is starting, or the models directory "
                f"holds no valid version); retry shortly{self._volume_note()}")
        raise ModelNotFound(f"model: no model named {name!r}; available models: "
                            f"{', '.join(self.model_names()) or 'none'}")

    # -- status -----------------------------------------------------------------------

    @property
    def serving(self) -> bool:
        """True when at least one version of some model is loaded."""
        return any(model.served for model in self._models.values())

    def model_names(self) -> list[str]:
        """Names with at least one loaded, loading, unloading or failed version."""
        return sorted(name for name, model in self._models.items() if model.known)

    def status(self, name: str) -> ModelStatus:
        """Versions and states of one model; raises like ``acquire`` for unknown names."""
        model = self._model_for_request(name)
        versions: dict[int, VersionStatus] = {}
        for number, (_, error) in model.failed.items():
            versions[number] = VersionStatus(number, VersionState.FAILED, error)
        for number in model.loading:
            versions[number] = VersionStatus(number, VersionState.LOADING)
        for number, served in model.retiring.items():
            versions[number] = VersionStatus(number, VersionState.UNLOADING, card=served.card)
        for number, served in model.served.items():
            versions[number] = VersionStatus(number, VersionState.AVAILABLE, card=served.card)
        default = model.default
        return ModelStatus(
            name=model.name,
            default_version=default.version if default else 0,
            versions=[versions[number] for number in sorted(versions, reverse=True)],
            default_card=default.card if default else None,
        )

    def statuses(self) -> list[ModelStatus]:
        """Status of every model the registry knows."""
        return [self.status(name) for name in self.model_names()]

    def _failures_note(self, model: _Model) -> str:
        if not model.failed:
            return ""
        return " (failed versions: " + ", ".join(str(v) for v in sorted(model.failed)) + ")"

    def _volume_note(self) -> str:
        return f" ({self._volume_error})" if self._volume_error else ""

    # -- scanning ---------------------------------------------------------------------

    async def scan(self) -> None:
        """One pass over the models directory: load what is new, retire what is gone."""
        async with self._scan_lock:
            started = time.perf_counter()
            loop = asyncio.get_running_loop()
            try:
                disk = await loop.run_in_executor(self._executor, _read_volume, self._root)
            except OSError as error:
                self._metrics.reload_failures.inc()
                message = f"cannot read the models directory {self._root}: {error}"
                if message != self._volume_error:
                    log.error("%s; keeping what is loaded", message)
                self._volume_error = message
                return
            if self._volume_error:
                log.info("models directory %s readable again", self._root)
            self._volume_error = None
            self._on_disk = set(disk)
            for name in sorted(set(disk) | set(self._models)):
                model = self._models.setdefault(name, _Model(name))
                await self._sync_model(model, disk.get(name, {}))
                self._publish_metrics(model)
            self._metrics.reload_duration.observe(time.perf_counter() - started)
            await self._report_health()

    async def _sync_model(self, model: _Model, on_disk: Mapping[int, Fingerprint]) -> None:
        """Bring one model's loaded versions in line with its versions on disk."""
        for number in list(model.failed):
            if number not in on_disk:
                del model.failed[number]
        kept: set[int] = set()
        for number in sorted(on_disk, reverse=True):
            if len(kept) == self._max_versions:
                break
            fingerprint = on_disk[number]
            served = model.served.get(number)
            if served is not None and served.fingerprint == fingerprint:
                kept.add(number)
                continue
            failure = model.failed.get(number)
            if failure is not None and failure[0] == fingerprint:
                if served is not None:  # a replacement failed: keep what was loaded
                    kept.add(number)
                continue
            if await self._load(model, number, fingerprint):
                kept.add(number)
                await self._report_health()  # the first version serves without waiting
            elif served is not None:
                kept.add(number)
        for number, served in list(model.served.items()):
            if number not in kept:
                reason = "removed from disk" if number not in on_disk else "superseded"
                log.info("unloading %s version %d (%s)", model.name, number, reason)
                self._retire(model, served)

    async def _load(self, model: _Model, number: int, fingerprint: Fingerprint) -> bool:
        """Validate, load and warm up one version off the event loop; record the outcome."""
        path = self._root / model.name / str(number)
        model.loading.add(number)
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        try:
            loaded = await loop.run_in_executor(self._executor, self._load_and_warm_up, path)
        except Exception as error:  # any failure of a version must leave the rest serving
            self._metrics.load_failures.inc()
            model.failed[number] = (fingerprint, str(error))
            log.error("cannot load %s version %d, ignoring it: %s", model.name, number, error)
            return False
        finally:
            model.loading.discard(number)
            self._metrics.load_duration.observe(time.perf_counter() - started)
        model.failed.pop(number, None)
        model.ever_loaded = True
        previous = model.served.get(number)
        model.served[number] = ServedVersion(
            model.name, number, loaded, self._make_batcher(model.name, loaded), fingerprint)
        if previous is not None:
            self._retire(model, previous, keep_routing=True)
        log.info("loaded %s version %d from %s in %.2f s (%d labels)", model.name, number,
                 path, time.perf_counter() - started, len(loaded.labels))
        return True

    def _load_and_warm_up(self, path: Path) -> LoadedModel:
        """In the loader thread: load_version, then one call so the first request is fast."""
        loaded = self._loader(path)
        probabilities = loaded.predict(np.zeros((1, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8))
        if probabilities.shape != (1, len(loaded.labels)) or not np.isfinite(
                probabilities).all():
            raise ValueError(f"{path}: warm-up call returned {probabilities.shape} "
                             f"(finite: {np.isfinite(probabilities).all()}), expected "
                             f"[1, {len(loaded.labels)}] finite probabilities")
        heap.refreeze()
        return loaded

    def _retire(self, model: _Model, served: ServedVersion, keep_routing: bool = False) -> None:
        """Take a version out of routing; unload it once its requests have finished."""
        if not keep_routing:
            model.served.pop(served.version, None)
        served.retiring = True
        model.retiring[served.version] = served
        if served.in_flight == 0:
            self._start_unload(model, served)

    def _start_unload(self, model: _Model, served: ServedVersion) -> None:
        if served.unloading:
            return
        served.unloading = True
        task = asyncio.get_running_loop().create_task(self._unload(model, served))
        self._unloads.add(task)
        task.add_done_callback(self._unloads.discard)

    async def _unload(self, model: _Model, served: ServedVersion) -> None:
        version = served.version
        try:
            await served.batcher.close()
        finally:
            if model.retiring.get(version) is served:
                del model.retiring[version]
            log.info("unloaded %s version %d", model.name, version)
        del served  # the last reference: the collection below can reclaim the model
        if not self._closing:
            await asyncio.get_running_loop().run_in_executor(self._executor, heap.refreeze)

    def _publish_metrics(self, model: _Model) -> None:
        """Loaded-version gauges, only for names that have been loaded (bounded labels)."""
        if not model.ever_loaded:
            return
        default = model.default
        self._metrics.loaded_versions.labels(model=model.name).set(len(model.served))
        self._metrics.default_version.labels(model=model.name).set(
            default.version if default else 0)

    async def _report_health(self) -> None:
        """Tell the listener which models can serve, when that changed."""
        health = {name: bool(model.served) for name, model in self._models.items()}
        health.setdefault(self._default_model, False)
        if health == self._last_health:
            return
        self._last_health = health
        if self._on_health_change is not None:
            await self._on_health_change(dict(health))


def _read_volume(root: Path) -> dict[str, dict[int, Fingerprint]]:
    """Versions with a card under ``root``: {name: {version: fingerprint}}.

    Raises OSError when ``root`` itself cannot be read. Directories without a card are
    still being written (or are not versions) and are skipped.
    """
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is not a directory; pass --models (or "
                                 "DIGITS_MODELS) naming the model volume")
    disk: dict[str, dict[int, Fingerprint]] = {}
    for name in volume.list_model_names(root):
        versions: dict[int, Fingerprint] = {}
        try:
            numbers = volume.list_versions(root, name)
        except OSError as error:
            log.warning("cannot list versions of %s: %s", name, error)
            continue
        for number in numbers:
            try:
                stat = (root / name / str(number) / CARD_FILENAME).stat()
            except OSError:
                continue
            versions[number] = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        disk[name] = versions
    return disk
