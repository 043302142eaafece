"""The registry's records: one loaded (or loading, failed, unloading) version, and the
records of one model name."""

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from digits.modelstore.saved_model import LoadedModel
from digits.service.domain import VersionState, VersionStatus

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
    error: str = ""  # why it failed
    predictor: "Predictor | None" = None  # attached by a load listener
    in_flight: int = 0

    @property
    def labels(self) -> tuple[str, ...]:
        return self.model.labels if self.model else ()

    @property
    def status(self) -> VersionStatus:
        return VersionStatus(self.version, self.state, self.error,
                             self.model.card if self.model else None)


@dataclass
class ModelVersions:
    """The registry's records of one model name."""

    name: str
    # One record per version number: LOADING, AVAILABLE or FAILED.
    versions: dict[int, ModelVersion] = field(default_factory=dict)
    # UNLOADING: out of routing, waiting for their requests (a reloaded version's old
    # copy may share its number with a record above).
    retiring: list[ModelVersion] = field(default_factory=list)

    def available(self) -> dict[int, ModelVersion]:
        return {number: record for number, record in self.versions.items()
                if record.state is VersionState.AVAILABLE}

    @property
    def default(self) -> ModelVersion | None:
        available = self.available()
        return available[max(available)] if available else None
