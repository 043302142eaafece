"""digits.v1.Classifier over gRPC: protos to the data plane's types and back, nothing else.

Requests are checked by the data plane; errors it raises become status codes in the
interceptor; the message conversions are ``digits_v1.messages``.
"""

import time

import grpc

from digits.service.dataplane import DataPlane
from digits.service.digits_v1.messages import classify_request, classify_response, model_status
from digits.v1 import classifier_pb2, classifier_pb2_grpc


class ClassifierServicer(classifier_pb2_grpc.ClassifierServicer):
    """Implements digits.v1.Classifier on top of the data plane."""

    def __init__(self, dataplane: DataPlane) -> None:
        self._dataplane = dataplane

    async def Classify(self, request: classifier_pb2.ClassifyRequest,
                       context: grpc.aio.ServicerContext) -> classifier_pb2.ClassifyResponse:
        """Classify a batch of images with one model version."""
        remaining = context.time_remaining()
        deadline = None if remaining is None else time.monotonic() + remaining
        answer = await self._dataplane.classify(classify_request(request, deadline))
        return classify_response(answer)

    async def ListModels(self, request: classifier_pb2.ListModelsRequest,
                         context: grpc.aio.ServicerContext
                         ) -> classifier_pb2.ListModelsResponse:
        """Every model the server knows, with the state of each version."""
        return classifier_pb2.ListModelsResponse(
            models=[model_status(status) for status in self._dataplane.models()])

    async def GetModel(self, request: classifier_pb2.GetModelRequest,
                       context: grpc.aio.ServicerContext) -> classifier_pb2.ModelStatus:
        """One model's versions, states, cards and signature."""
        return model_status(self._dataplane.model_status(request.name))
