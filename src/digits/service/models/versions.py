"""The registry's records: one loaded (or loading, failed, unloading) version, and the
records of one model name."""

import hashlib
import random
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from digits.modelstore.labels import CANARY, STABLE, InvalidLabels, validate_label
from digits.modelstore.saved_model import LoadedModel
from digits.service.domain import GateResult, ModelStatus, VersionState, VersionStatus
from digits.service.errors import InvalidInput, ModelNotFound, ModelUnavailable, echo

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
    # Version labels as the volume's labels file asks, and as they route now: a label
    # moves onto a version only once it is AVAILABLE, and keeps its old one till then.
    requested_labels: dict[str, int] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    canary_weight: float = 0.0  # share of unpinned requests sent to the canary
    canary_halted: str = ""  # why the canary guard stopped the canary's share ('' if not)

    def resolve_labels(self) -> None:
        """Move each label onto its requested version if that is AVAILABLE, else keep the
        version it routes to now while that one still is (else it routes nowhere)."""
        available = self.available()
        resolved = {}
        for label, wanted in self.requested_labels.items():
            current = self.labels.get(label)
            if wanted in available:
                resolved[label] = wanted
            elif current in available:
                resolved[label] = current
        self.labels = resolved

    def available(self) -> dict[int, ModelVersion]:
        """Versions that passed the gate (or had none): the default is the newest."""
        return {number: record for number, record in self.versions.items()
                if record.state is VersionState.AVAILABLE}

    def pinnable(self) -> dict[int, ModelVersion]:
        """Every loaded version, rejected ones included: a request may pin any of them."""
        return {number: record for number, record in self.versions.items() if record.loaded}

    @property
    def default(self) -> ModelVersion | None:
        """What unpinned requests get: the ``stable`` label's version when it routes, else
        the newest version that passed the gate."""
        available = self.available()
        stable = self.labels.get(STABLE)
        if stable in available:
            return available[stable]
        return available[max(available)] if available else None

    def unpinned(self, request_id: str = "") -> ModelVersion | None:
        """The version a request that pins nothing gets: the canary's for
        ``canary_weight`` of them (the same ``request_id``, the same answer), else the
        default."""
        default, canary = self.default, self.labels.get(CANARY)
        # Hashing the request id last: most requests meet no canary at all.
        if default is None or canary is None or canary == default.version or (
                not self.canary_weight or self.canary_halted
                or share(request_id) >= self.canary_weight):
            return default
        return self.versions[canary]

    def status(self) -> ModelStatus:
        """Versions and states, newest first, with the labels and the canary's state."""
        records = {record.version: record for record in self.retiring}
        records.update(self.versions)  # a number's current record wins over its old copy
        default = self.default
        return ModelStatus(
            name=self.name,
            default_version=default.version if default else 0,
            versions=[records[number].status for number in sorted(records, reverse=True)],
            default_card=default.model.card if default and default.model else None,
            labels=dict(self.labels),
            pending_labels={label: version for label, version
                            in self.requested_labels.items()
                            if self.labels.get(label) != version},
            canary_weight=self.canary_weight,
            canary_halted=self.canary_halted,
        )

    def labelled(self, label: str) -> ModelVersion:
        """The version a request naming ``label`` gets; raises with the fix."""
        try:
            validate_label(label)
        except InvalidLabels as error:
            raise InvalidInput(f"version_label: {error}") from None
        routed = self.labels.get(label)
        if routed is not None:
            return self.versions[routed]
        wanted = self.requested_labels.get(label)
        if wanted is not None:
            raise ModelUnavailable(
                f"version_label: label {label!r} of model {self.name!r} points at version "
                f"{wanted}, which is not loaded and through the quality gate yet; retry "
                "shortly, or pin a version")
        known = ", ".join(sorted(self.requested_labels)) or "none"
        raise ModelNotFound(f"version_label: model {self.name!r} has no label "
                            f"{echo(label)}; its labels: {known} (set one with digits "
                            "promote)")

    def why_no_default(self) -> str:
        """Why the model has no default version, and what to do, for the error message."""
        rejected = sorted(n for n, r in self.versions.items() if r.state is VersionState.REJECTED)
        failed = sorted(n for n, r in self.versions.items() if r.state is VersionState.FAILED)
        note = f" (failed versions: {', '.join(map(str, failed))})" if failed else ""
        if rejected:
            return (f"model {self.name!r}: every loaded version failed the quality gate "
                    f"(rejected: {', '.join(map(str, rejected))}){note}; pin one to debug it, "
                    "or publish a better version")
        return (f"model {self.name!r} has no loaded version yet{note}; retry once a version "
                "has loaded")


def share(request_id: str) -> float:
    """A number in [0, 1): a hash of ``request_id`` when there is one (so a retried
    request lands where it did), else random."""
    if not request_id:
        return random.random()
    digest = hashlib.blake2b(request_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64
