"""Loaded model versions: one state each, routing by name and version, lifecycle hooks.

The registry never reads the disk: the volume watcher tells it what is loading, loaded,
failed or retired. A retired version leaves routing at once and unloads once its
in-flight requests have finished, so a swap never fails a request. What must happen
around a load or an unload (a predictor for the version, the heap, gauges, health) is
done by listeners, called in the order they were given.
"""

import asyncio
import contextlib
import logging
from collections.abc import Hashable, Iterator, Mapping, Sequence

from digits.modelstore.labels import CANARY, STABLE
from digits.modelstore.names import InvalidModelName, validate_model_name
from digits.modelstore.saved_model import LoadedModel
from digits.service.domain import GateResult, ModelStatus, VersionState
from digits.service.errors import InvalidInput, ModelNotFound, ModelUnavailable, echo
from digits.service.models.versions import ModelVersion, ModelVersions

__all__ = ["ModelRegistry", "ModelVersion", "RegistryListener"]

log = logging.getLogger(__name__)


class RegistryListener:
    """Told of loads, unloads and changes; subclasses override what they need."""

    async def on_load(self, version: ModelVersion) -> None:
        """A version has loaded and is about to take traffic."""

    async def on_unload(self, version: ModelVersion) -> None:
        """A version has served its last request; its predictor is closed, its model
        released."""

    async def on_change(self, registry: "ModelRegistry") -> None:
        """Some version changed state (after on_load and on_unload)."""


class ModelRegistry:
    """The versions the server holds, and the one request-facing way to reach them."""

    def __init__(self, listeners: Sequence[RegistryListener] = ()) -> None:
        self._listeners = list(listeners)
        self._models: dict[str, ModelVersions] = {}
        self._unloads: set[asyncio.Task[None]] = set()
        self._problem: str | None = None  # why nothing may be loaded, e.g. an unreadable volume

    # -- what the watcher tells it ------------------------------------------------------

    async def loading(self, name: str, number: int) -> None:
        """A version has started loading (a loaded one being replaced keeps serving)."""
        model = self._model(name)
        current = model.versions.get(number)
        if current is None or not current.loaded:
            model.versions[number] = ModelVersion(name, number, VersionState.LOADING)
            await self._changed()

    async def loaded(self, name: str, number: int, loaded: LoadedModel,
                     source: Hashable, gate: GateResult | None = None) -> None:
        """A version has loaded: listeners prepare it, then it takes traffic (replacing a
        loaded copy of the same number, which retires). Failing the ``gate``, it is
        REJECTED: never the default, served only to requests that pin it."""
        model = self._model(name)
        record = ModelVersion(name, number, VersionState.LOADING, loaded, source, gate=gate)
        for listener in self._listeners:
            await listener.on_load(record)
        previous = model.versions.get(number)
        if gate is None or gate.passed:
            record.state = VersionState.AVAILABLE
        else:
            record.state, record.error = VersionState.REJECTED, gate.reason
        model.versions[number] = record
        if previous is not None and previous.loaded:
            self._retire(model, previous)
        await self._changed()

    async def failed(self, name: str, number: int, error: str) -> None:
        """A version could not load; a loaded copy of the same number keeps serving."""
        model = self._model(name)
        current = model.versions.get(number)
        if current is None or not current.loaded:
            model.versions[number] = ModelVersion(name, number, VersionState.FAILED,
                                                  error=error)
            await self._changed()

    async def remove(self, name: str, number: int) -> None:
        """Take a version out: routing stops at once, the unload follows its last request."""
        model = self._model(name)
        record = model.versions.pop(number, None)
        if record is None:
            return
        if record.loaded:
            self._retire(model, record)
        await self._changed()

    async def set_labels(self, name: str, labels: Mapping[str, int],
                         canary_weight: float = 0.0) -> None:
        """The version labels the volume asks for (all of them: absent ones are dropped),
        each moving once its version is AVAILABLE, and the canary's share."""
        model = self._model(name)
        if (model.requested_labels, model.canary_weight) != (dict(labels), canary_weight):
            model.requested_labels, model.canary_weight = dict(labels), canary_weight
            model.canary_halted = ""  # a changed canary gets a fresh start
            await self._changed()

    def halt_canary(self, name: str, reason: str) -> None:
        """Send ``name``'s canary no more unpinned requests (until its labels change)."""
        self._model(name).canary_halted = reason

    def canary_contest(self, name: str) -> tuple[int, int] | None:
        """The (stable, canary) versions to compare, when both labels route to different
        versions and the canary is not halted; else None."""
        model = self._models.get(name)
        if model is None or model.canary_halted:
            return None
        stable, canary = model.labels.get(STABLE), model.labels.get(CANARY)
        if stable is None or canary is None or stable == canary:
            return None
        return stable, canary

    def canary_halted(self, name: str) -> str:
        """Why ``name``'s canary was halted ('' when it was not)."""
        model = self._models.get(name)
        return model.canary_halted if model else ""

    def report_problem(self, problem: str | None) -> None:
        """Why versions may be missing (None: no problem), told to requests that find none."""
        self._problem = problem

    async def close(self) -> None:
        """Retire every version and wait for the unloads (call after serving has stopped)."""
        for model in self._models.values():
            for number, record in list(model.versions.items()):
                del model.versions[number]
                if record.loaded:
                    self._retire(model, record)
        if self._unloads:
            await asyncio.gather(*self._unloads, return_exceptions=True)

    # -- requests ---------------------------------------------------------------------

    @contextlib.contextmanager
    def acquire(self, name: str, version: int = 0, label: str = "",
                request_id: str = "") -> Iterator[ModelVersion]:
        """The version to serve a request; it stays loaded until the block exits.

        ``version`` 0 and no ``label`` mean the default: the ``stable`` label's version,
        else the newest loaded version that passed the gate, or the ``canary`` label's
        for its weighted share (by ``request_id`` when given). A pinned version may be a
        rejected one. Raises InvalidInput, ModelNotFound or ModelUnavailable with the fix.
        """
        record = self._route(name, version, label, request_id)
        record.in_flight += 1
        try:
            yield record
        finally:
            record.in_flight -= 1
            if record.state is VersionState.UNLOADING and record.in_flight == 0:
                self._start_unload(self._models[record.name], record)

    def _route(self, name: str, version: int, label: str, request_id: str) -> ModelVersion:
        model = self._known_model(name)
        if version < 0:
            raise InvalidInput(f"version: {version} is not a version; send 0 for the newest "
                               "or a positive version number")
        if label:
            if version:
                raise InvalidInput("version, version_label: both are set; pin a version or "
                                   "name a label, not both")
            return model.labelled(label)
        pinnable = model.pinnable()
        if version:
            if version not in pinnable:
                raise ModelNotFound(
                    f"version: model {model.name!r} has no version {version} loaded; loaded "
                    f"versions: {', '.join(map(str, sorted(pinnable))) or 'none'} (send 0 "
                    "for the default)")
            return pinnable[version]
        chosen = model.unpinned(request_id)
        if chosen is None:
            raise ModelUnavailable(model.why_no_default())
        return chosen

    def _known_model(self, name: str) -> ModelVersions:
        """The model a request names, the name validated before it is used anywhere."""
        try:
            validate_model_name(name)
        except InvalidModelName as error:
            raise InvalidInput(f"model: {error}") from None
        model = self._models.get(name)
        if model is not None and (model.versions or model.retiring):
            return model
        if not self.serving:
            problem = f" ({self._problem})" if self._problem else ""
            raise ModelUnavailable(
                "no model is loaded yet (the server is starting, or the models directory "
                f"holds no valid version); retry shortly{problem}")
        raise ModelNotFound(f"model: no model named {echo(name)}; available models: "
                            f"{', '.join(self.model_names()) or 'none'}")

    # -- status -----------------------------------------------------------------------

    @property
    def serving(self) -> bool:
        """True when at least one version of some model is loaded."""
        return any(model.available() for model in self._models.values())

    def model_names(self) -> list[str]:
        """Names with at least one version in any state."""
        return sorted(name for name, model in self._models.items()
                      if model.versions or model.retiring)

    def readiness(self) -> dict[str, bool]:
        """Every model name ever seen, and whether a version of it can serve."""
        return {name: bool(model.available()) for name, model in self._models.items()}

    def loaded_versions(self, name: str) -> list[int]:
        """The loaded (AVAILABLE) versions of ``name``, oldest first; none for unknown names."""
        model = self._models.get(name)
        return sorted(model.available()) if model else []

    def sources(self, name: str) -> dict[int, Hashable]:
        """The source of each loaded version of ``name``, rejected ones included (what
        the watcher compares)."""
        model = self._models.get(name)
        return {n: r.source for n, r in model.pinnable().items()} if model else {}

    def routed_labels(self, name: str) -> dict[str, int]:
        """Each label of ``name`` and the version it routes to now (none for unknown
        names)."""
        model = self._models.get(name)
        return dict(model.labels) if model else {}

    def labelled_versions(self, name: str) -> set[int]:
        """Versions a label asks for or still routes to (the watcher keeps them loaded)."""
        model = self._models.get(name)
        if model is None:
            return set()
        return set(model.requested_labels.values()) | set(model.labels.values())

    def default_version(self, name: str) -> int:
        """The version unpinned requests for ``name`` get now (0: none)."""
        model = self._models.get(name)
        default = model.default if model else None
        return default.version if default else 0

    def default_model(self, name: str) -> LoadedModel | None:
        """The model of ``name``'s default version (what a new version is gated against)."""
        model = self._models.get(name)
        default = model.default if model else None
        return default.model if default else None

    def status(self, name: str) -> ModelStatus:
        """Versions and states of one model, newest first; raises like ``acquire``."""
        return self._known_model(name).status()

    def statuses(self) -> list[ModelStatus]:
        """Status of every model the registry knows."""
        return [self.status(name) for name in self.model_names()]

    # -- retirement -------------------------------------------------------------------

    def _model(self, name: str) -> ModelVersions:
        return self._models.setdefault(name, ModelVersions(name))

    def _retire(self, model: ModelVersions, record: ModelVersion) -> None:
        record.state = VersionState.UNLOADING
        model.retiring.append(record)
        if record.in_flight == 0:
            self._start_unload(model, record)

    def _start_unload(self, model: ModelVersions, record: ModelVersion) -> None:
        task = asyncio.get_running_loop().create_task(self._unload(model, record))
        self._unloads.add(task)
        task.add_done_callback(self._unloads.discard)

    async def _unload(self, model: ModelVersions, record: ModelVersion) -> None:
        try:
            if record.predictor is not None:
                await record.predictor.close()  # finishes what it admitted
        except Exception:  # a bug: log it, and unload the version all the same
            log.exception("closing the predictor of %s version %d failed", model.name,
                          record.version)
        record.predictor = record.model = None  # released: listeners may reclaim it
        if record in model.retiring:
            model.retiring.remove(record)
        log.info("unloaded %s version %d", model.name, record.version)
        for listener in self._listeners:
            await listener.on_unload(record)
        await self._changed()

    async def _changed(self) -> None:
        for model in self._models.values():
            model.resolve_labels()
        for listener in self._listeners:
            await listener.on_change(self)
