"""TensorFlow Serving's messages to the data plane's types and back.

A digits model's serving signature ``serving_default`` takes ``pixels`` (DT_UINT8
[N, 28, 28]) and returns ``probabilities`` (DT_FLOAT [N, classes]); this server also
takes ``images`` (DT_STRING [N], one PNG or JPEG file each) in its place.
"""

from collections.abc import Mapping

import numpy as np
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, model_pb2

from digits.service import tensor_input
from digits.service.domain import EncodedImage, ModelMetadata, ModelStatus, VersionState
from digits.service.errors import InvalidInput, ModelNotFound, echo

SIGNATURE = "serving_default"
PIXELS, IMAGES, PROBABILITIES = "pixels", "images", "probabilities"
_INPUTS_HELP = (f"send one input: '{PIXELS}' (DT_UINT8 [N, 28, 28]) or '{IMAGES}' "
                "(DT_STRING [N], PNG or JPEG files)")
_STATES = {VersionState.LOADING: get_model_status_pb2.ModelVersionStatus.LOADING,
           VersionState.AVAILABLE: get_model_status_pb2.ModelVersionStatus.AVAILABLE,
           VersionState.UNLOADING: get_model_status_pb2.ModelVersionStatus.UNLOADING,
           VersionState.FAILED: get_model_status_pb2.ModelVersionStatus.END,
           # Loaded and reachable by pinning it; the status's error says why it is no
           # default.
           VersionState.REJECTED: get_model_status_pb2.ModelVersionStatus.AVAILABLE}
_FAILED_PRECONDITION = 9


def spec_version(spec: model_pb2.ModelSpec, field: str = "model_spec") -> tuple[int, str]:
    """The version a ModelSpec pins (0: the default) and the label it names ('': none)."""
    if spec.WhichOneof("version_choice") == "version_label":
        return 0, spec.version_label
    if spec.HasField("version"):
        if spec.version.value < 1:
            raise InvalidInput(f"{field}.version: {spec.version.value} is not a version; "
                               "send a positive version, or none for the default")
        return int(spec.version.value), ""
    return 0, ""


def check_signature(name: str, field: str = "model_spec.signature_name") -> None:
    if name not in ("", SIGNATURE):
        raise InvalidInput(f"{field}: {echo(name)}; digits models have one signature, "
                           f"'{SIGNATURE}'")


def request_images(inputs: Mapping[str, tensor_pb2.TensorProto]
                   ) -> np.ndarray | list[EncodedImage]:
    """The images of a PredictRequest's inputs."""
    if len(inputs) != 1:
        raise InvalidInput(f"inputs: {len(inputs)} given; {_INPUTS_HELP}")
    name, tensor = next(iter(inputs.items()))
    field = f"inputs[{echo(name)}]"
    shape = [dim.size for dim in tensor.tensor_shape.dim]
    if name == PIXELS:
        _expect_dtype(tensor, types_pb2.DT_UINT8, field)
        data = tensor.tensor_content or list(tensor.int_val)
        return tensor_input.pixels(data, shape, field)
    if name == IMAGES:
        _expect_dtype(tensor, types_pb2.DT_STRING, field)
        return tensor_input.files(list(tensor.string_val), shape, field)
    raise InvalidInput(f"{field}: not an input of this model; {_INPUTS_HELP}")


def check_output_filter(names: list[str]) -> None:
    if any(name != PROBABILITIES for name in names):
        raise InvalidInput(f"output_filter: {echo(str(names))}; this model's one output is "
                           f"'{PROBABILITIES}'")


def float_tensor(values: np.ndarray) -> tensor_pb2.TensorProto:
    """A float32 array as a TensorProto (raw contents, as TensorFlow writes them)."""
    return tensor_pb2.TensorProto(
        dtype=types_pb2.DT_FLOAT, tensor_shape=_shape(values.shape),
        tensor_content=np.ascontiguousarray(values, dtype="<f4").tobytes())


def answer_spec(name: str, version: int) -> model_pb2.ModelSpec:
    spec = model_pb2.ModelSpec(name=name, signature_name=SIGNATURE)
    spec.version.value = version
    return spec


def signature_map(metadata: ModelMetadata) -> get_model_metadata_pb2.SignatureDefMap:
    """The signature this server serves: inputs ``pixels`` or ``images``, ``probabilities``."""
    info = meta_graph_pb2.TensorInfo
    signature = meta_graph_pb2.SignatureDef(method_name="tensorflow/serving/predict")
    signature.inputs[PIXELS].CopyFrom(info(name=PIXELS, dtype=types_pb2.DT_UINT8,
                                           tensor_shape=_shape((-1, 28, 28))))
    signature.inputs[IMAGES].CopyFrom(info(name=IMAGES, dtype=types_pb2.DT_STRING,
                                           tensor_shape=_shape((-1,))))
    signature.outputs[PROBABILITIES].CopyFrom(info(
        name=PROBABILITIES, dtype=types_pb2.DT_FLOAT,
        tensor_shape=_shape((-1, len(metadata.labels)))))
    signatures = get_model_metadata_pb2.SignatureDefMap()
    signatures.signature_def[SIGNATURE].CopyFrom(signature)
    return signatures


def model_status(status: ModelStatus, version: int) -> get_model_status_pb2.GetModelStatusResponse:
    """A model's versions (or the one pinned) with TensorFlow Serving's states."""
    response = get_model_status_pb2.GetModelStatusResponse()
    for entry in status.versions:
        if version and entry.version != version:
            continue
        added = response.model_version_status.add(version=entry.version,
                                                  state=_STATES[entry.state])
        added.status.SetInParent()  # OK, as TensorFlow Serving says of a healthy version
        if entry.state is VersionState.FAILED:
            added.status.error_code = 2  # UNKNOWN, as TensorFlow Serving reports failures
            added.status.error_message = entry.error
        elif entry.state is VersionState.REJECTED:
            added.status.error_code = _FAILED_PRECONDITION
            added.status.error_message = f"rejected by the quality gate: {entry.error}"
    if version and not response.model_version_status:
        raise ModelNotFound(f"model_spec.version: model {status.name!r} has no version "
                            f"{version}")
    return response


def _expect_dtype(tensor: tensor_pb2.TensorProto, dtype: int, field: str) -> None:
    if tensor.dtype != dtype:
        raise InvalidInput(f"{field}.dtype: {types_pb2.DataType.Name(tensor.dtype)}; send "
                           f"{types_pb2.DataType.Name(dtype)}")


def _shape(dims: tuple[int, ...]) -> tensor_shape_pb2.TensorShapeProto:
    return tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=size) for size in dims])
