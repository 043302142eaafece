"""The Open Inference Protocol's HTTP inference bodies: the JSON tensor form and the binary
tensor data extension (what tritonclient.http sends by default).

With the extension, the body is a JSON header of ``Inference-Header-Content-Length``
bytes followed by the binary data of every input whose ``parameters.binary_data_size``
says how many bytes it takes, in the order of the inputs; answers are laid out the same
way when the client asked for binary outputs. In the JSON form, ``images`` elements are
base64 strings of the files (JSON strings cannot hold arbitrary bytes).
"""

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from digits.service.domain import Classification
from digits.service.errors import InvalidInput, echo
from digits.service.oip import tensors

HEADER_LENGTH = "Inference-Header-Content-Length"


@dataclass(frozen=True)
class InferBody:
    """A parsed inference request."""

    inputs: list[tensors.InputTensor]
    outputs: list[tensors.RequestedOutput]
    binary_output: bool  # answer with the binary extension
    id: str
    version_label: str = ""  # parameters.version_label: a label instead of a version


def parse_infer(body: bytes, header_length: str | None) -> InferBody:
    """An inference request body, JSON or JSON header plus binary data."""
    length = _header_length(header_length, len(body))
    try:
        header = json.loads(body[:length])
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidInput(f"body: not a JSON inference request ({error}); send "
                           '{"inputs": [{"name", "shape", "datatype", "data"}]}') from None
    if not isinstance(header, dict):
        raise InvalidInput("body: the inference request must be a JSON object")
    binary = memoryview(body)[length:]
    inputs, used = [], 0
    for index, item in enumerate(_list(header, "inputs")):
        tensor, size = _input(item, f"inputs[{index}]", binary[used:])
        inputs.append(tensor)
        used += size
    if used != len(binary):
        raise InvalidInput(f"body: {len(binary) - used} bytes of binary data that no input's "
                           "parameters.binary_data_size claims")
    outputs, binary_output = _outputs(header)
    label = _parameters(header, "").get("version_label", "")
    if not isinstance(label, str):
        raise InvalidInput("parameters.version_label: send a string, a version label such "
                           "as 'stable'")
    return InferBody(inputs, outputs, binary_output, str(header.get("id", "")), label)


def render_infer(answer: Classification, output: tensors.OutputTensor, request_id: str,
                 binary: bool) -> tuple[bytes, dict[str, str]]:
    """The answer's body and headers: JSON, or a JSON header and the raw output."""
    described: dict[str, Any] = {"name": output.name, "datatype": output.datatype,
                                 "shape": list(output.shape)}
    raw = b""
    if binary:
        raw = output.raw()
        described["parameters"] = {"binary_data_size": len(raw)}
    elif output.datatype == "BYTES":
        described["data"] = [item.decode() for item in output.array.ravel()]
    else:
        described["data"] = output.array.ravel().tolist()
    reply: dict[str, Any] = {"model_name": answer.model, "model_version": str(answer.version),
                             "outputs": [described]}
    if request_id:
        reply["id"] = request_id
    header = json.dumps(reply).encode()
    if not binary:
        return header, {"Content-Type": "application/json"}
    return header + raw, {"Content-Type": "application/octet-stream",
                          HEADER_LENGTH: str(len(header))}


def _header_length(text: str | None, body: int) -> int:
    if text is None:
        return body
    if not text.isdigit() or int(text) > body:
        raise InvalidInput(f"{HEADER_LENGTH}: {echo(text)} is not the length of the JSON "
                           f"header within the body of {body} bytes")
    return int(text)


def _input(item: Any, field: str, binary: memoryview) -> tuple[tensors.InputTensor, int]:
    """One input and how many bytes of the binary data it took."""
    if not isinstance(item, dict):
        raise InvalidInput(f"{field}: not an object; send name, shape, datatype and data")
    name, datatype = item.get("name"), item.get("datatype")
    shape = item.get("shape")
    if not isinstance(name, str) or not isinstance(datatype, str) or not (
            isinstance(shape, list) and all(type(d) is int for d in shape)):
        raise InvalidInput(f"{field}: needs a string name, a string datatype and an "
                           "integer list shape")
    size = _parameters(item, field).get("binary_data_size")
    if size is not None:
        if type(size) is not int or not 0 <= size <= len(binary):
            raise InvalidInput(f"{field}.parameters.binary_data_size: {echo(str(size))}; the "
                               f"binary data after the header holds {len(binary)} more bytes")
        return tensors.InputTensor(name, datatype, tuple(shape), bytes(binary[:size]),
                                   field), size
    if "data" not in item:
        raise InvalidInput(f"{field}: no data; send 'data' or binary data with "
                           "parameters.binary_data_size")
    data = _flat(item["data"], field)
    if datatype == "BYTES":
        data = [_base64(element, f"{field}.data[{i}]") for i, element in enumerate(data)]
    return tensors.InputTensor(name, datatype, tuple(shape), data, field), 0


def _outputs(header: Mapping[str, Any]) -> tuple[list[tensors.RequestedOutput], bool]:
    requested, binary = [], bool(_parameters(header, "").get("binary_data_output", False))
    for index, item in enumerate(_list(header, "outputs", required=False)):
        field = f"outputs[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise InvalidInput(f"{field}: send an object with the output's name")
        parameters = _parameters(item, field)
        classification = parameters.get("classification", 0)
        if type(classification) is not int:
            raise InvalidInput(f"{field}.parameters.classification: send an integer, the "
                               "number of most probable classes to return")
        binary = binary or bool(parameters.get("binary_data", False))
        requested.append(tensors.RequestedOutput(item["name"], classification, field))
    return requested, binary


def _list(header: Mapping[str, Any], key: str, required: bool = True) -> list[Any]:
    value = header.get(key, None if required else [])
    if not isinstance(value, list):
        raise InvalidInput(f"{key}: send a list" + ("" if value is None else
                                                    f", not {type(value).__name__}"))
    return value


def _parameters(item: Mapping[str, Any], field: str) -> Mapping[str, Any]:
    parameters = item.get("parameters", {})
    if not isinstance(parameters, dict):
        raise InvalidInput(f"{field + '.' if field else ''}parameters: send an object")
    return parameters


def _flat(data: Any, field: str) -> list[Any]:
    """JSON data, nested or flat, as one row-major list."""
    try:
        return list(np.asarray(data).ravel().tolist())
    except ValueError:
        raise InvalidInput(f"{field}.data: nested lists of unequal lengths; send the "
                           "elements flat, in row-major order") from None


def _base64(element: Any, field: str) -> bytes:
    if not isinstance(element, str):
        raise InvalidInput(f"{field}: send each file as a base64 string")
    try:
        return base64.b64decode(element, validate=True)
    except binascii.Error:
        raise InvalidInput(f"{field}: not base64; send each file base64-encoded, or the "
                           "raw files with the binary tensor extension") from None
