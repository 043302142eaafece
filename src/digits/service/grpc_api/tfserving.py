"""TensorFlow Serving's gRPC API over the data plane: PredictionService (Predict,
GetModelMetadata) and ModelService (GetModelStatus), so an existing TF Serving client
pointed at this port works unchanged. Their other methods answer UNIMPLEMENTED."""

import time
from typing import Any

import grpc
from google.protobuf import any_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2,
    prediction_service_pb2_grpc,
)

from digits.service.dataplane import DataPlane
from digits.service.domain import ClassifyRequest
from digits.service.errors import InvalidInput
from digits.service.tfserving import messages

PREDICTION_SERVICE: str = prediction_service_pb2.DESCRIPTOR.services_by_name[
    "PredictionService"].full_name
MODEL_SERVICE: str = model_service_pb2.DESCRIPTOR.services_by_name["ModelService"].full_name


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict and GetModelMetadata of one model's ``serving_default`` signature."""

    def __init__(self, dataplane: DataPlane) -> None:
        self._dataplane = dataplane

    async def Predict(self, request: predict_pb2.PredictRequest,
                      context: grpc.aio.ServicerContext) -> predict_pb2.PredictResponse:
        spec = request.model_spec
        messages.check_signature(spec.signature_name)
        messages.check_output_filter(list(request.output_filter))
        remaining = context.time_remaining()
        version, label = messages.spec_version(spec)
        answer = await self._dataplane.classify(ClassifyRequest(
            images=messages.request_images(request.inputs), model=spec.name,
            version=version, label=label,
            deadline=None if remaining is None else time.monotonic() + remaining))
        response = predict_pb2.PredictResponse(
            model_spec=messages.answer_spec(answer.model, answer.version))
        response.outputs[messages.PROBABILITIES].CopyFrom(
            messages.float_tensor(answer.probabilities))
        return response

    async def GetModelMetadata(
            self, request: get_model_metadata_pb2.GetModelMetadataRequest,
            context: grpc.aio.ServicerContext) -> get_model_metadata_pb2.GetModelMetadataResponse:
        if list(request.metadata_field) != ["signature_def"]:
            raise InvalidInput(f"metadata_field: {list(request.metadata_field)}; send "
                               "['signature_def'], the one field served")
        metadata = self._dataplane.model_metadata(request.model_spec.name,
                                                  *messages.spec_version(request.model_spec))
        packed = any_pb2.Any()
        packed.Pack(messages.signature_map(metadata))
        response = get_model_metadata_pb2.GetModelMetadataResponse(
            model_spec=messages.answer_spec(metadata.name, metadata.version))
        response.metadata["signature_def"].CopyFrom(packed)
        return response


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """GetModelStatus: every version of a model (or the one pinned) and its state."""

    def __init__(self, dataplane: DataPlane) -> None:
        self._dataplane = dataplane

    async def GetModelStatus(
            self, request: get_model_status_pb2.GetModelStatusRequest,
            context: grpc.aio.ServicerContext) -> get_model_status_pb2.GetModelStatusResponse:
        spec = request.model_spec
        version, label = messages.spec_version(spec)
        if label:  # the version it routes to now
            version = self._dataplane.model_metadata(spec.name, 0, label).version
        return messages.model_status(self._dataplane.model_status(spec.name), version)


def add_to_server(dataplane: DataPlane, server: Any) -> None:
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(dataplane), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(dataplane), server)
