"""The protocol-neutral types the data plane speaks: numpy arrays and plain dataclasses.

Front ends convert their wire messages to these and back; nothing here knows a protocol.
"""

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from digits.service.errors import InvalidInput, echo
from digits.v1.model_card_pb2 import ModelCard, TensorSpec


@dataclass(frozen=True, slots=True)
class RawImage:
    """One image as 784 raw bytes (28x28 uint8, white ink on black); ``field`` names it."""

    pixels: bytes
    field: str


@dataclass(frozen=True, slots=True)
class EncodedImage:
    """One PNG or JPEG file, converted to MNIST form by the server; ``field`` names it."""

    data: bytes
    field: str


ImageInput = RawImage | EncodedImage


@dataclass(frozen=True)
class ClassifyRequest:
    """Classify ``images`` with one model version.

    ``images`` is uint8 [N, 28, 28] pixels, or one RawImage or EncodedImage per image.
    ``model`` empty means the default model; ``version`` 0 and no ``label`` its default
    version (the ``stable`` label's, else the newest that passed the quality gate);
    ``top_k`` the most probable classes to rank per image, named ``top_k_field`` in
    errors (each protocol calls it its own way); ``deadline`` is absolute
    ``time.monotonic()`` seconds (None: no deadline).
    """

    images: np.ndarray | Sequence[ImageInput]
    model: str = ""
    version: int = 0
    top_k: int = 0
    deadline: float | None = None
    label: str = ""  # a version label instead of a version (empty: none)
    request_id: str = ""  # the client's id: a canary split sends the same id the same way
    top_k_field: str = "top_k"
    return_model_input: bool = False  # answer with the pixels the model received, too


@dataclass(frozen=True)
class Classification:
    """The answer: which version classified, its labels, float32 [N, classes] probabilities."""

    model: str
    version: int
    labels: tuple[str, ...]
    probabilities: np.ndarray
    top_k: int  # how many most probable classes to rank per image
    # uint8 [N, 28, 28]: what the model received, when the request asked for it.
    model_input: np.ndarray | None = None


class VersionState(enum.Enum):
    """Lifecycle of one model version: exactly one of these at a time."""

    LOADING = "loading"
    AVAILABLE = "available"
    UNLOADING = "unloading"
    FAILED = "failed"
    # Loaded, but failed the quality gate: served only to requests that pin it.
    REJECTED = "rejected"


@dataclass(frozen=True)
class GateResult:
    """Whether a version passed the quality gate, why, and the figures that decided it."""

    passed: bool
    reason: str
    accuracy: float | None = None  # on the golden set; None when there was none
    examples: int = 0
    seconds: float = 0.0  # evaluating the version (and the default) on the golden set
    golden_source: str = ""
    default_accuracy: float | None = None  # the default version's, on the same images


@dataclass(frozen=True)
class VersionStatus:
    """One version of a model as status requests report it."""

    version: int
    state: VersionState
    error: str = ""  # why it failed to load, or why the gate rejected it
    card: ModelCard | None = None
    gate: GateResult | None = None


@dataclass(frozen=True)
class ModelStatus:
    """One model: its versions, newest first, and the one unpinned requests get."""

    name: str
    default_version: int
    versions: list[VersionStatus]
    default_card: ModelCard | None
    labels: dict[str, int] = field(default_factory=dict)  # label -> the version it routes to
    # Labels the volume moved to a version not loaded and through the gate yet.
    pending_labels: dict[str, int] = field(default_factory=dict)
    canary_weight: float = 0.0  # share of unpinned requests sent to the canary
    canary_halted: str = ""  # why the canary guard stopped that share ('' if it did not)


@dataclass(frozen=True)
class ModelMetadata:
    """What a client needs to call one loaded version: its signature and labels."""

    name: str
    version: int
    versions: list[int]  # every loaded version, newest first
    platform: str
    labels: tuple[str, ...]
    inputs: list[TensorSpec] = field(default_factory=list)
    outputs: list[TensorSpec] = field(default_factory=list)


@dataclass(frozen=True)
class ServerMetadata:
    """The server's name, version and the protocol extensions it supports."""

    name: str
    version: str
    extensions: tuple[str, ...] = ()


def parse_version(text: str, field: str) -> int:
    """A version sent as text (paths, some protocols' fields); empty means the newest (0)."""
    if not text:
        return 0
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise InvalidInput(f"{field}: {echo(text)} is not a version; send a positive "
                           "integer, or nothing for the newest")
    return int(text)
