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
from digits.service.settings import ConnectionSettings, LimitSettings
from digits.v1 import classifier_pb2_grpc

HEALTH_SERVICE: str = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
# The inference services and their protocol label in the request metrics.
PROTOCOLS = {CLASSIFIER_SERVICE: "digits.v1/grpc", INFERENCE_SERVICE: "oip.v2/grpc",
             PREDICTION_SERVICE: "tfserving/grpc", MODEL_SERVICE: "tfserving/grpc"}


# A connection that has not finished its handshake after this long is dropped, and
# clients may not ping a quiet connection more often than this (else GOAWAY).
HANDSHAKE_TIMEOUT_MS = 20_000
MIN_CLIENT_PING_INTERVAL_MS = 10_000
KEEPALIVE_TIMEOUT_MS = 20_000


def server_options(limits: LimitSettings, connections: ConnectionSettings,
                   max_connections: int, grace: float) -> list[tuple[str, int]]:
    """Message size limits both ways, and the connections' bounds and lifetimes."""
    def ms(seconds: float) -> int:
        return int(seconds * 1000)

    return [
        *channel_options(limits.max_message_bytes),
        ("grpc.max_allowed_incoming_connections", max_connections),
        ("grpc.max_concurrent_streams", connections.max_streams_per_connection),
        ("grpc.max_connection_idle_ms", ms(connections.idle_timeout)),
        ("grpc.max_connection_age_ms", ms(connections.max_connection_age)),
        ("grpc.max_connection_age_grace_ms", ms(grace)),
        ("grpc.keepalive_time_ms", ms(connections.keepalive_time)),
        ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
        ("grpc.keepalive_permit_without_calls", 1),  # ping quiet connections too
        ("grpc.http2.min_recv_ping_interval_without_data_ms", MIN_CLIENT_PING_INTERVAL_MS),
        ("grpc.http2.max_ping_strikes", 2),
        ("grpc.server_handshake_timeout_ms", HANDSHAKE_TIMEOUT_MS),
    ]


def create_grpc_server(dataplane: DataPlane, health: HealthReporter,
                       interceptor: RequestInterceptor,
                       options: list[tuple[str, int]]) -> grpc.aio.Server:
    """A gRPC server (not yet bound or started) with every service the front end offers."""
    server = grpc.aio.server(interceptors=[interceptor], options=options)
    classifier_pb2_grpc.add_ClassifierServicer_to_server(ClassifierServicer(dataplane), server)
    open_inference_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
        InferenceServicer(dataplane), server)
    add_tfserving(dataplane, server)
    health_pb2_grpc.add_HealthServicer_to_server(health.servicer, server)
    reflection.enable_server_reflection(
        (*PROTOCOLS, HEALTH_SERVICE, reflection.SERVICE_NAME), server)
    return server
