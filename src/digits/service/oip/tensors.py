"""Open Inference Protocol v2 tensors of a digits model, whichever transport carries them.

A digits model takes one input: ``pixels`` (UINT8 [N, 28, 28], white ink on black, as in
MNIST) or ``images`` (BYTES [N], one PNG or JPEG file each). It returns
``probabilities`` (FP32 [N, classes]) or, with the classification extension, the k most
probable classes of each image as "score:index:label" strings (BYTES [N, k]).
"""

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from digits.api import IMAGE_SIZE
from digits.service import tensor_input
from digits.service.domain import Classification, EncodedImage
from digits.service.errors import InvalidInput, echo

PIXELS, IMAGES, PROBABILITIES = "pixels", "images", "probabilities"
_INPUTS_HELP = (f"send one input: '{PIXELS}' (UINT8 [N, 28, 28]) or '{IMAGES}' "
                "(BYTES [N], PNG or JPEG files)")
_LENGTH = struct.Struct("<I")  # the 4-byte little-endian length before each BYTES element


@dataclass(frozen=True)
class TensorSpec:
    """A tensor's name, data type and shape (-1: any size), as metadata reports it."""

    name: str
    datatype: str
    shape: tuple[int, ...]


def input_specs() -> list[TensorSpec]:
    return [TensorSpec(PIXELS, "UINT8", (-1, IMAGE_SIZE, IMAGE_SIZE)),
            TensorSpec(IMAGES, "BYTES", (-1,))]


def output_specs(classes: int) -> list[TensorSpec]:
    return [TensorSpec(PROBABILITIES, "FP32", (-1, classes))]


@dataclass(frozen=True)
class InputTensor:
    """One input as a transport received it: raw little-endian bytes, or its elements in
    row-major order; ``field`` names it in errors (``inputs[0]``)."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: bytes | Sequence[Any]
    field: str


@dataclass(frozen=True)
class OutputTensor:
    """One output: float32 probabilities, or an object array of "score:index:label" bytes."""

    name: str
    datatype: str
    array: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    def raw(self) -> bytes:
        """The contents as the binary forms carry them (BYTES elements length-prefixed)."""
        if self.datatype == "BYTES":
            return serialize_bytes(self.array.ravel().tolist())
        return np.ascontiguousarray(self.array, dtype="<f4").tobytes()


def request_images(inputs: Sequence[InputTensor]) -> np.ndarray | list[EncodedImage]:
    """The images of a request's inputs: an array of pixels, or the encoded files."""
    if len(inputs) != 1:
        raise InvalidInput(f"inputs: {len(inputs)} given; {_INPUTS_HELP}")
    tensor = inputs[0]
    if tensor.name == PIXELS:
        return _pixels(tensor)
    if tensor.name == IMAGES:
        return _encoded(tensor)
    raise InvalidInput(f"{tensor.field}.name: {echo(tensor.name)} is not an input of this "
                       f"model; {_INPUTS_HELP}")


def _pixels(tensor: InputTensor) -> np.ndarray:
    _expect_datatype(tensor, "UINT8")
    return tensor_input.pixels(tensor.data, tensor.shape, tensor.field)


def _encoded(tensor: InputTensor) -> list[EncodedImage]:
    _expect_datatype(tensor, "BYTES")
    elements = (deserialize_bytes(tensor.data, tensor.field)
                if isinstance(tensor.data, bytes | bytearray | memoryview)
                else list(tensor.data))
    return tensor_input.files(elements, tensor.shape, tensor.field)


def _expect_datatype(tensor: InputTensor, datatype: str) -> None:
    if tensor.datatype != datatype:
        raise InvalidInput(f"{tensor.field}.datatype: {echo(tensor.name)} is {datatype}, got "
                           f"{echo(tensor.datatype)}")


def output_tensor(answer: Classification, classification: int) -> OutputTensor:
    """``probabilities``: the probabilities, or with ``classification`` k > 0 the k most
    probable classes of each image as b"score:index:label", most probable first."""
    if not classification:
        return OutputTensor(PROBABILITIES, "FP32", answer.probabilities)
    ranked = np.argsort(-answer.probabilities, axis=1, kind="stable")[:, :classification]
    scores = np.take_along_axis(answer.probabilities, ranked, axis=1)
    strings = [[f"{score:f}:{index}:{answer.labels[index]}".encode()
                for score, index in zip(row_scores, row, strict=True)]
               for row_scores, row in zip(scores.tolist(), ranked.tolist(), strict=True)]
    array = np.empty(ranked.shape, dtype=object)
    array[...] = strings
    return OutputTensor(PROBABILITIES, "BYTES", array)


def serialize_bytes(elements: Sequence[bytes]) -> bytes:
    """BYTES elements as the binary forms carry them: each after its 4-byte length."""
    return b"".join(_LENGTH.pack(len(element)) + element for element in elements)


def deserialize_bytes(data: bytes | bytearray | memoryview, field: str) -> list[bytes]:
    """The elements of length-prefixed BYTES data; InvalidInput if it is cut short."""
    view = memoryview(data)
    elements, offset = [], 0
    while offset < len(view):
        if offset + _LENGTH.size > len(view):
            raise InvalidInput(f"{field}: BYTES data ends inside an element's length; send "
                               "each element as a 4-byte little-endian length and its bytes")
        (length,) = _LENGTH.unpack_from(view, offset)
        offset += _LENGTH.size
        if offset + length > len(view):
            raise InvalidInput(f"{field}: a BYTES element of {length} bytes runs past the "
                               f"end of the data ({len(view) - offset} left)")
        elements.append(bytes(view[offset:offset + length]))
        offset += length
    return elements


@dataclass(frozen=True)
class RequestedOutput:
    """An output a request asks for; ``classification`` k > 0 asks for the k most
    probable classes instead of the probabilities."""

    name: str
    classification: int
    field: str


def classification_of(outputs: Sequence[RequestedOutput]) -> tuple[int, str]:
    """k of the classification extension (0: plain probabilities) and the field that
    asked for it, from the outputs a request names (none: every output, plainly)."""
    if not outputs:
        return 0, ""
    if len(outputs) > 1:
        raise InvalidInput(f"outputs: {len(outputs)} requested; this model has one output, "
                           f"'{PROBABILITIES}': ask for it once")
    output = outputs[0]
    if output.name != PROBABILITIES:
        raise InvalidInput(f"{output.field}.name: {echo(output.name)} is not an output of this "
                           f"model; ask for '{PROBABILITIES}'")
    return output.classification, f"{output.field}.parameters.classification"
