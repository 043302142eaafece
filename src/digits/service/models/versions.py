"""The registry's records: one loaded (or loading, failed, unloading) version, and the
records of one model name."""

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from digits.modelstore.saved_model import LoadedModel
from digits.service.domain import GateResult, VersionState, VersionStatus

if TYPE_CHECKING:
    from digits.service.batching import Predictor


@dataclass(eq=False)
class ModelVersion:
    """One version the registry knows, in exactly one state."""

    name: str
    version: int
    state: VersionState
    model: LoadedModel | None = None
    source: Hashable = None  # what it was loaded from, as the watcher identifies it
    error: str = ""  # why it failed, or why the gate rejected it
    predictor: "Predictor | None" = None  # attached by a load listener
    in_flight: int = 0
    gate: GateResult | None = None

    @property
    def loaded(self) -> bool:
        """Loaded and in routing: the default candidate, or reachable by pinning it."""
        return self.state in (VersionState.AVAILABLE, VersionState.REJECTED)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.model.labels if self.model else ()

    @property
    def status(self) -> VersionStatus:
        return VersionStatus(self.version, self.state, self.error,
                             self.model.card if self.model else None, self.gate)


@dataclass
class ModelVersions:
    """The registry's records of one model name."""

    name: str
    # One record per version number: LOADING, AVAILABLE, REJECTED or FAILED.
    versions: dict[int, ModelVersion] = field(default_factory=dict)
    # UNLOADING: out of routing, waiting for their requests (a reloaded version's old
    # copy may share its number with a record above).
    retiring: list[ModelVersion] = field(default_factory=list)

    def available(self) -> dict[int, ModelVersion]:
        """Versions that passed the gate (or had none): the default is the newest."""
        return {number: record for number, record in self.versions.items()
                if record.state is VersionState.AVAILABLE}

    def pinnable(self) -> dict[int, ModelVersion]:
        """Every loaded version, rejected ones included: a request may pin any of them."""
        return {number: record for number, record in self.versions.items() if record.loaded}

    @property
    def default(self) -> ModelVersion | None:
        available = self.available()
        return available[max(available)] if available else None
