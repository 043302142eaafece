"""The volume watcher: keeps the registry in step with the model volume.

Every ``poll_interval`` seconds it lists ``<models>/<name>/<version>/`` and, off the event
loop, validates and loads new versions with ``modelstore.saved_model.load_version``
(card, sha256 of every file, serving signature) plus one warm-up call, then judges it
with the quality gate (``gate``: the golden set against the card's claim and the current
default). The newest ``max_versions`` valid versions of each model stay loaded, rejected
ones included (a request may pin them); older ones and those removed from disk are
retired. A version that fails is logged, counted and remembered (it is
retried only if its card changes), and disturbs nothing. The watcher tells the registry
what happened; the registry never calls back.
"""

import asyncio
import concurrent.futures
import contextlib
import errno
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from digits.api import IMAGE_SIZE
from digits.modelstore import volume
from digits.modelstore.card import CARD_FILENAME
from digits.modelstore.golden import InvalidGoldenSet
from digits.modelstore.labels import InvalidLabels, read_labels
from digits.modelstore.saved_model import LoadedModel, load_version
from digits.service.domain import GateResult
from digits.service.metrics import ServiceMetrics
from digits.service.models import gate
from digits.service.models.registry import ModelRegistry
from digits.service.settings import VolumeSettings

log = logging.getLogger(__name__)

# Identifies one published state of a version directory: (inode, mtime_ns, size) of its
# card, which publishing writes last. A changed fingerprint means a new attempt is due.
Fingerprint = tuple[int, int, int]
Loader = Callable[[Path], LoadedModel]


class VolumeWatcher:
    """Scans the models directory and loads, replaces and retires versions to match it."""

    def __init__(self, settings: VolumeSettings, registry: ModelRegistry,
                 metrics: ServiceMetrics, loader: Loader = load_version) -> None:
        self._root = Path(settings.models)
        self._poll_interval = settings.poll_interval
        self._max_versions = settings.max_versions
        self._thresholds = gate.Thresholds(settings.gate_tolerance, settings.gate_margin,
                                           settings.gate_min_accuracy)
        self._registry = registry
        self._metrics = metrics
        self._loader = loader
        self._failed: dict[tuple[str, int], Fingerprint] = {}  # not retried while unchanged
        # One thread: disk scans and TensorFlow loads stay off the event loop and never
        # compete with each other for the loader.
        self._executor = concurrent.futures.ThreadPoolExecutor(1, "digits-loader")
        self._scan_lock = asyncio.Lock()
        self._poller: asyncio.Task[None] | None = None
        self._volume_error: str | None = None
        self._labels_errors: dict[str, str] = {}  # the last unusable labels file, by model

    async def start(self) -> None:
        """Start polling; the first scan runs at once, in the background."""
        if self._poller is None:
            self._poller = asyncio.get_running_loop().create_task(
                self._poll_forever(), name="digits-volume-watcher")

    async def close(self) -> None:
        """Stop polling and wait for a load still running in the loader thread."""
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        await asyncio.to_thread(self._executor.shutdown, wait=True)

    async def _poll_forever(self) -> None:
        while True:
            try:
                await self.scan()
            except Exception:  # a bug in one scan must not end polling for good
                self._metrics.reload_failures.labels(reason="error").inc()
                log.exception("scan of %s failed; trying again in %.1f s", self._root,
                              self._poll_interval)
            await asyncio.sleep(self._poll_interval)

    async def scan(self) -> None:
        """One pass over the models directory: load what is new, retire what is gone."""
        async with self._scan_lock:
            started = time.perf_counter()
            loop = asyncio.get_running_loop()
            try:
                disk = await loop.run_in_executor(self._executor, read_volume, self._root)
            except OSError as error:
                self._unreadable(f"cannot read the models directory {self._root}: {error}",
                                 out_of_descriptors(error))
                return
            if self._volume_error:
                log.info("models directory %s readable again", self._root)
            self._volume_error = None
            self._registry.report_problem(None)
            for name in sorted(set(disk) | set(self._registry.model_names())):
                await self._sync_model(name, disk.get(name, {}))
            self._metrics.reload_duration.observe(time.perf_counter() - started)

    def _unreadable(self, message: str, out_of_descriptors: bool) -> None:
        reason = "out_of_descriptors" if out_of_descriptors else "unreadable"
        self._metrics.reload_failures.labels(reason=reason).inc()
        if message != self._volume_error:
            log.error("%s; keeping what is loaded", message)
        self._volume_error = message
        self._registry.report_problem(message)

    async def _sync_model(self, name: str, on_disk: Mapping[int, Fingerprint]) -> None:
        """Bring one model's loaded versions in line with its versions on disk."""
        for key in [key for key in self._failed if key[0] == name and key[1] not in on_disk]:
            del self._failed[key]
            await self._registry.remove(*key)
        if on_disk:
            await self._read_labels(name)
        loaded = self._registry.sources(name)
        kept: set[int] = set()
        # The newest max_versions valid ones, and every version a label asks for or
        # still routes to (a label's old version serves until its new one is ready).
        labelled = self._registry.labelled_versions(name)
        for number in sorted(on_disk, reverse=True):
            if len(kept) >= self._max_versions and number not in labelled:
                continue
            fingerprint = on_disk[number]
            unchanged = loaded.get(number) == fingerprint
            if unchanged or self._failed.get((name, number)) == fingerprint:
                if number in loaded:  # current, or its replacement failed: keep serving it
                    kept.add(number)
                continue
            if await self._load(name, number, fingerprint) or number in loaded:
                kept.add(number)
        for number in loaded:
            if number not in kept:
                reason = "removed from disk" if number not in on_disk else "superseded"
                log.info("unloading %s version %d (%s)", name, number, reason)
                await self._registry.remove(name, number)

    async def _read_labels(self, name: str) -> None:
        """Give the registry the labels file's assignments; an unusable file changes
        nothing (logged once)."""
        loop = asyncio.get_running_loop()
        try:
            labels = await loop.run_in_executor(self._executor, read_labels, self._root, name)
        except InvalidLabels as error:
            if self._labels_errors.get(name) != str(error):
                log.error("%s; the labels keep their current versions", error)
            self._labels_errors[name] = str(error)
            return
        self._labels_errors.pop(name, None)
        await self._registry.set_labels(name, dict(labels.labels), labels.canary_weight)

    def _record_gate(self, name: str, number: int, judged: GateResult) -> None:
        result = ("ungated" if judged.accuracy is None and judged.passed
                  else "passed" if judged.passed else "rejected")
        self._metrics.gate_results.labels(model=name, result=result).inc()
        if judged.examples:
            self._metrics.gate_duration.observe(judged.seconds)
        if judged.passed:
            log.info("%s version %d: quality gate %s (%.3f s)", name, number, judged.reason,
                     judged.seconds)
        else:
            log.warning("%s version %d REJECTED by the quality gate: %s; it serves only "
                        "requests that pin it", name, number, judged.reason)

    async def _load(self, name: str, number: int, fingerprint: Fingerprint) -> bool:
        """Validate, load and warm up one version off the event loop; tell the registry."""
        path = self._root / name / str(number)
        await self._registry.loading(name, number)
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        try:
            loaded = await loop.run_in_executor(
                self._executor, load_and_warm_up, self._loader, path)
            # Only a version that would take over from the default is held to it: an
            # older one (loaded after a newer at start-up, say) is not.
            default = self._registry.default_version(name)
            judged = await loop.run_in_executor(
                self._executor, judge, loaded, path,
                self._registry.default_model(name) if 0 < default < number else None,
                self._thresholds)
            self._record_gate(name, number, judged)
            await self._registry.loaded(name, number, loaded, fingerprint, judged)
        except Exception as error:  # any failure of a version must leave the rest serving
            self._metrics.load_failures.inc()
            if out_of_descriptors(error):  # not the version's fault: try again next scan
                log.error("cannot load %s version %d now (%s); retrying on the next scan",
                          name, number, error)
            else:
                self._failed[(name, number)] = fingerprint
                log.error("cannot load %s version %d, ignoring it: %s", name, number, error)
            await self._registry.failed(name, number, str(error))
            return False
        finally:
            self._metrics.load_duration.observe(time.perf_counter() - started)
        self._failed.pop((name, number), None)
        log.info("loaded %s version %d from %s in %.2f s (%d labels)", name, number, path,
                 time.perf_counter() - started, len(loaded.labels))
        return True


def out_of_descriptors(error: BaseException) -> bool:
    """Whether ``error``, or one it was raised from, is the open-files limit (EMFILE,
    ENFILE): the process's state, not the version's."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.EMFILE, errno.ENFILE):
            return True
        if "Too many open files" in str(seen):  # TensorFlow's errors carry only the text
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def load_and_warm_up(loader: Loader, path: Path) -> LoadedModel:
    """In the loader thread: load a version, then call it once so the first request is fast."""
    loaded = loader(path)
    probabilities = loaded.predict(np.zeros((1, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8))
    if probabilities.shape != (1, len(loaded.labels)) or not np.isfinite(probabilities).all():
        raise ValueError(f"{path}: warm-up call returned {probabilities.shape} "
                         f"(finite: {np.isfinite(probabilities).all()}), expected "
                         f"[1, {len(loaded.labels)}] finite probabilities")
    return loaded


def judge(loaded: LoadedModel, path: Path, default: LoadedModel | None,
          thresholds: gate.Thresholds) -> GateResult:
    """In the loader thread: the quality gate's verdict on a loaded version (an unusable
    golden set rejects it, naming the file and the fix)."""
    try:
        golden_set = gate.find_golden_set(path, len(loaded.labels))
    except InvalidGoldenSet as error:
        return GateResult(False, f"the golden set cannot be used: {error}")
    return gate.evaluate(loaded, golden_set, default, thresholds)


def read_volume(root: Path) -> dict[str, dict[int, Fingerprint]]:
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
