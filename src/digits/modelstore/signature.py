"""The serving signature every exported model has, and the spec the card records."""

from digits.api import IMAGE_SIZE
from digits.v1.model_card_pb2 import TensorSpec

SIGNATURE_KEY = "serving_default"
INPUT_NAME = "pixels"
OUTPUT_NAME = "probabilities"
PREPROCESSING = (
    "input: uint8 [N, 28, 28] pixels in MNIST polarity (white ink on black, 0..255); "
    "the graph casts to float32 and divides by 255; any further normalisation is inside "
    "the model"
)


def input_spec() -> TensorSpec:
    """Spec of the signature input: uint8 [N, 28, 28]."""
    return TensorSpec(name=INPUT_NAME, dtype="uint8", shape=[-1, IMAGE_SIZE, IMAGE_SIZE])


def output_spec(classes: int) -> TensorSpec:
    """Spec of the signature output: float32 [N, classes] probabilities."""
    return TensorSpec(name=OUTPUT_NAME, dtype="float32", shape=[-1, classes])
