"""inference.GRPCInferenceService, the Open Inference Protocol v2 over gRPC, over the data
plane: messages to ``oip.tensors`` and back, nothing else.

Outputs always travel in ``raw_output_contents``, which is what tritonclient reads.
"""

import time
from typing import TypeAlias

import grpc

from digits.oip import open_inference_pb2 as pb
from digits.oip import open_inference_pb2_grpc
from digits.service.dataplane import DataPlane
from digits.service.domain import ClassifyRequest, parse_version
from digits.service.errors import InvalidInput
from digits.service.oip import tensors

EXTENSIONS = ("classification",)
Context: TypeAlias = grpc.aio.ServicerContext


class InferenceServicer(open_inference_pb2_grpc.GRPCInferenceServiceServicer):
    """Implements the Open Inference Protocol's gRPC service on top of the data plane."""

    def __init__(self, dataplane: DataPlane) -> None:
        self._dataplane = dataplane

    async def ServerLive(self, request: pb.ServerLiveRequest,
                         context: Context) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=self._dataplane.live())

    async def ServerReady(self, request: pb.ServerReadyRequest,
                          context: Context) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self._dataplane.ready())

    async def ModelReady(self, request: pb.ModelReadyRequest,
                         context: Context) -> pb.ModelReadyResponse:
        version = parse_version(request.version, "version")
        return pb.ModelReadyResponse(ready=self._dataplane.model_ready(request.name, version))

    async def ServerMetadata(self, request: pb.ServerMetadataRequest,
                             context: Context) -> pb.ServerMetadataResponse:
        metadata = self._dataplane.metadata()
        return pb.ServerMetadataResponse(name=metadata.name, version=metadata.version,
                                         extensions=EXTENSIONS)

    async def ModelMetadata(self, request: pb.ModelMetadataRequest,
                            context: Context) -> pb.ModelMetadataResponse:
        metadata = self._dataplane.model_metadata(
            request.name, parse_version(request.version, "version"))
        spec = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=metadata.name, versions=[str(version) for version in metadata.versions],
            platform=metadata.platform,
            inputs=[spec(name=s.name, datatype=s.datatype, shape=s.shape)
                    for s in tensors.input_specs()],
            outputs=[spec(name=s.name, datatype=s.datatype, shape=s.shape)
                     for s in tensors.output_specs(len(metadata.labels))])

    async def ModelInfer(self, request: pb.ModelInferRequest,
                         context: Context) -> pb.ModelInferResponse:
        classification, field = tensors.classification_of(_requested_outputs(request))
        remaining = context.time_remaining()
        answer = await self._dataplane.classify(ClassifyRequest(
            images=tensors.request_images(_inputs(request)), model=request.model_name,
            version=parse_version(request.model_version, "model_version"),
            label=_version_label(request), request_id=request.id,
            top_k=classification, top_k_field=field or "top_k",
            deadline=None if remaining is None else time.monotonic() + remaining))
        output = tensors.output_tensor(answer, classification)
        response = pb.ModelInferResponse(
            model_name=answer.model, model_version=str(answer.version), id=request.id)
        response.outputs.add(name=output.name, datatype=output.datatype, shape=output.shape)
        response.raw_output_contents.append(output.raw())
        return response


def _inputs(request: pb.ModelInferRequest) -> list[tensors.InputTensor]:
    """The request's inputs with their data, raw or typed."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise InvalidInput(f"raw_input_contents: {len(raw)} entries for {len(request.inputs)} "
                           "inputs; send one per input, in the order of inputs")
    inputs = []
    for index, tensor in enumerate(request.inputs):
        field = f"inputs[{index}]"
        if raw and tensor.HasField("contents"):
            raise InvalidInput(f"{field}.contents: set while raw_input_contents is used; "
                               "send every input's data in one of them")
        contents = tensor.contents
        data = raw[index] if raw else (
            contents.bytes_contents if tensor.datatype == "BYTES" else contents.uint_contents)
        inputs.append(tensors.InputTensor(tensor.name, tensor.datatype, tuple(tensor.shape),
                                          data, field))
    return inputs


def _version_label(request: pb.ModelInferRequest) -> str:
    """The request's ``version_label`` parameter ('' when absent): a label instead of a
    model_version (this server's extension, as TensorFlow Serving's version_label)."""
    if "version_label" not in request.parameters:
        return ""
    parameter = request.parameters["version_label"]
    if parameter.WhichOneof("parameter_choice") != "string_param":
        raise InvalidInput("parameters.version_label: send a string, a version label such "
                           "as 'stable'")
    return parameter.string_param


def _requested_outputs(request: pb.ModelInferRequest) -> list[tensors.RequestedOutput]:
    outputs = []
    for index, output in enumerate(request.outputs):
        field = f"outputs[{index}]"
        classification = 0
        if "classification" in output.parameters:
            parameter = output.parameters["classification"]
            kind = parameter.WhichOneof("parameter_choice")
            if kind not in ("int64_param", "uint64_param"):
                raise InvalidInput(f"{field}.parameters.classification: send an integer, "
                                   "the number of most probable classes to return")
            classification = getattr(parameter, kind)
        outputs.append(tensors.RequestedOutput(output.name, classification, field))
    return outputs
