"""Facts of the digits.v1 API that servers and clients share: names, image size, limits.

Imports only the generated code, so a client or a load generator can use it without
the server (or TensorFlow) on its path.
"""

from digits.oip import open_inference_pb2
from digits.v1 import classifier_pb2

IMAGE_SIZE = 28
PIXELS_PER_IMAGE = IMAGE_SIZE * IMAGE_SIZE
MIB = 1 << 20
# Largest request or response message both ways unless told otherwise: 4,096 raw
# images take about 3.3 MB, their answers with every probability about 0.3 MB.
DEFAULT_MAX_MESSAGE_BYTES = 16 * MIB

CLASSIFIER_SERVICE: str = classifier_pb2.DESCRIPTOR.services_by_name["Classifier"].full_name
CLASSIFY_METHOD = f"/{CLASSIFIER_SERVICE}/Classify"
# The Open Inference Protocol v2's gRPC service (package "inference").
INFERENCE_SERVICE: str = open_inference_pb2.DESCRIPTOR.services_by_name[
    "GRPCInferenceService"].full_name
MODEL_INFER_METHOD = f"/{INFERENCE_SERVICE}/ModelInfer"


def channel_options(max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> list[tuple[str, int]]:
    """gRPC server and channel options: explicit message size limits both ways."""
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
    ]
