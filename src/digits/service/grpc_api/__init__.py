"""The gRPC front end: digits.v1.Classifier, the Open Inference Protocol's
GRPCInferenceService, TensorFlow Serving's PredictionService and ModelService,
grpc.health.v1 and reflection, on one server."""

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from digits.api import CLASSIFIER_SERVICE, INFERENCE_SERVICE, channel_options
from digits.oip import open_inference_pb2_grpc
from digits.service.dataplane import DataPlane
from digits.service.grpc_api.classifier import ClassifierServicer
from digits.service.grpc_api.health import HealthReporter
from digits.service.grpc_api.inference import InferenceServicer
from digits.service.grpc_api.interceptor import RequestInterceptor
from digits.service.grpc_api.tfserving import MODEL_SERVICE, PREDICTION_SERVICE
from digits.service.grpc_api.tfserving import add_to_server as add_tfserving
from digits.service.settings import LimitSettings
from digits.v1 import classifier_pb2_grpc

HEALTH_SERVICE: str = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
# The inference services and their protocol label in the request metrics.
PROTOCOLS = {CLASSIFIER_SERVICE: "digits.v1/grpc", INFERENCE_SERVICE: "oip.v2/grpc",
             PREDICTION_SERVICE: "tfserving/grpc", MODEL_SERVICE: "tfserving/grpc"}


def create_grpc_server(dataplane: DataPlane, health: HealthReporter,
                       interceptor: RequestInterceptor, limits: LimitSettings) -> grpc.aio.Server:
    """A gRPC server (not yet bound or started) with every service the front end offers."""
    server = grpc.aio.server(interceptors=[interceptor],
                             options=channel_options(limits.max_message_bytes))
    classifier_pb2_grpc.add_ClassifierServicer_to_server(ClassifierServicer(dataplane), server)
    open_inference_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
        InferenceServicer(dataplane), server)
    add_tfserving(dataplane, server)
    health_pb2_grpc.add_HealthServicer_to_server(health.servicer, server)
    reflection.enable_server_reflection(
        (*PROTOCOLS, HEALTH_SERVICE, reflection.SERVICE_NAME), server)
    return server
