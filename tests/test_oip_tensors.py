"""Open Inference Protocol tensors alone: inputs to images, outputs, BYTES framing."""

import re

import numpy as np
import pytest

from digits.service.domain import Classification, EncodedImage, parse_version
from digits.service.errors import InvalidInput
from digits.service.oip import tensors
from digits.service.oip.tensors import InputTensor, RequestedOutput


def pixels_tensor(data: object, shape: tuple[int, ...] = (1, 28, 28),
                  datatype: str = "UINT8") -> InputTensor:
    return InputTensor("pixels", datatype, shape, data, "inputs[0]")  # type: ignore[arg-type]


def test_raw_and_typed_pixels_give_the_same_array() -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (2, 28, 28), dtype=np.uint8)
    raw = tensors.request_images([pixels_tensor(pixels.tobytes(), (2, 28, 28))])
    typed = tensors.request_images([pixels_tensor(pixels.ravel().tolist(), (2, 28, 28))])
    assert isinstance(raw, np.ndarray) and isinstance(typed, np.ndarray)
    np.testing.assert_array_equal(raw, pixels)
    np.testing.assert_array_equal(typed, pixels)


def test_bytes_elements_round_trip_and_become_encoded_images() -> None:
    files = [b"\x89PNG first", b"", b"JPEG" * 100]
    framed = tensors.serialize_bytes(files)
    assert tensors.deserialize_bytes(framed, "f") == files
    images = tensors.request_images(
        [InputTensor("images", "BYTES", (3,), framed, "inputs[0]")])
    assert images == [EncodedImage(data, f"inputs[0][{index}]")
                      for index, data in enumerate(files)]


BAD = [
    ([], "inputs: 0 given"),
    ([pixels_tensor(bytes(784)), pixels_tensor(bytes(784))], "inputs: 2 given"),
    ([InputTensor("image", "UINT8", (1, 28, 28), bytes(784), "inputs[0]")],
     "inputs[0].name: 'image' is not an input of this model"),
    ([pixels_tensor(bytes(784), datatype="FP32")], "inputs[0].datatype: 'pixels' is UINT8"),
    ([pixels_tensor(bytes(784), (1, 784))], "inputs[0].shape: [1, 784]; send [N, 28, 28]"),
    ([pixels_tensor(bytes(783))], "inputs[0]: has 783 bytes of data, its shape [1, 28, 28] "
                                  "needs 784"),
    ([pixels_tensor([0] * 700)], "inputs[0]: has 700 elements"),
    ([pixels_tensor([256] + [0] * 783)], "inputs[0]: values outside 0..255"),
    ([pixels_tensor(["a"] * 784)], "inputs[0]: the data are not integers"),
    ([InputTensor("images", "BYTES", (2,), tensors.serialize_bytes([b"x"]), "inputs[0]")],
     "inputs[0]: has 1 elements, its shape [2] needs 2"),
    ([InputTensor("images", "BYTES", (1,), b"\x05\x00", "inputs[0]")],
     "inputs[0]: BYTES data ends inside an element's length"),
    ([InputTensor("images", "BYTES", (1,), b"\x09\x00\x00\x00abc", "inputs[0]")],
     "inputs[0]: a BYTES element of 9 bytes runs past the end of the data (3 left)"),
    ([InputTensor("images", "BYTES", (1, 2), [b"a", b"b"], "inputs[0]")],
     "inputs[0].shape: [1, 2]; send [N] (or [N, 1])"),
]


@pytest.mark.parametrize(("inputs", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_inputs_name_the_field_and_the_fix(inputs: list[InputTensor],
                                               message: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)):
        tensors.request_images(inputs)


def test_outputs_are_probabilities_or_ranked_classes() -> None:
    probabilities = np.array([[0.1, 0.7, 0.2], [0.5, 0.25, 0.25]], np.float32)
    answer = Classification("m", 1, ("zero", "one", "two"), probabilities, 0)
    plain = tensors.output_tensor(answer, 0)
    assert (plain.datatype, plain.shape) == ("FP32", (2, 3))
    np.testing.assert_array_equal(np.frombuffer(plain.raw(), "<f4").reshape(2, 3),
                                  probabilities)
    ranked = tensors.output_tensor(answer, 2)
    assert (ranked.datatype, ranked.shape) == ("BYTES", (2, 2))
    assert tensors.deserialize_bytes(ranked.raw(), "out") == [
        b"0.700000:1:one", b"0.200000:2:two", b"0.500000:0:zero", b"0.250000:1:one"]


def test_requested_outputs_and_versions() -> None:
    assert tensors.classification_of([]) == (0, "")
    assert tensors.classification_of([RequestedOutput("probabilities", 3, "outputs[0]")]) == (
        3, "outputs[0].parameters.classification")
    with pytest.raises(InvalidInput, match=re.escape("outputs[0].name: 'labels' is not an output")):
        tensors.classification_of([RequestedOutput("labels", 0, "outputs[0]")])
    with pytest.raises(InvalidInput, match="outputs: 2 requested"):
        tensors.classification_of([RequestedOutput("probabilities", 0, "a")] * 2)
    assert (parse_version("", "v"), parse_version("12", "v")) == (0, 12)
    for bad in ("0", "-1", "1.5", "v1", "\u0661"):  # the last: ARABIC-INDIC DIGIT ONE
        with pytest.raises(InvalidInput, match="is not a version"):
            parse_version(bad, "model_version")
