"""Bulk-encoded predictions equal what the protobuf message API builds."""

import numpy as np
import pytest

from digits.service.digits_v1.prediction_wire import ARRAY_FROM, PredictionEncoder, encoder_for
from digits.v1 import classifier_pb2


def reference(probabilities: np.ndarray, labels: list[str], top_k: int
              ) -> classifier_pb2.ClassifyResponse:
    """The same response built one message at a time with the protobuf API."""
    response = classifier_pb2.ClassifyResponse(model="m", version=7)
    for row in probabilities.astype(np.float32):
        index = int(row.argmax())
        prediction = response.predictions.add(
            label=labels[index], class_index=index, confidence=float(row[index]),
            probabilities=row.tolist())
        for column in np.argsort(-row, kind="stable")[:top_k]:
            prediction.top.add(label=labels[column], probability=float(row[column]))
    return response


def encoded(probabilities: np.ndarray, labels: list[str], top_k: int
            ) -> classifier_pb2.ClassifyResponse:
    response = classifier_pb2.ClassifyResponse(model="m", version=7)
    response.MergeFromString(PredictionEncoder(labels).encode(probabilities, top_k))
    return response


DIGITS = [str(digit) for digit in range(10)]
# Labels of one byte length: every prediction has one length (the array path).
EQUAL = ["cat", "dog", "owl", "émû"[:1] + "x"]
# Multi-byte UTF-8, an empty label, and labels long enough for two-byte lengths.
ODD = ["", "null", "zéro", "数字", "x" * 200]
# More than 127 classes: class indexes and the probabilities' length take two bytes.
MANY = [f"class-{number}" for number in range(300)]


@pytest.mark.parametrize("labels", [DIGITS, EQUAL, ODD, MANY],
                         ids=["digits", "equal", "odd", "many"])
@pytest.mark.parametrize("top_k", [0, 1, 3, "all"])
@pytest.mark.parametrize("count", [1, ARRAY_FROM - 1, ARRAY_FROM, 50])
def test_bulk_encoding_equals_the_message_api(labels: list[str], top_k: int | str,
                                              count: int) -> None:
    k = len(labels) if top_k == "all" else int(top_k)
    rng = np.random.default_rng(len(labels) + k)
    probabilities = rng.dirichlet(np.ones(len(labels)), count).astype(np.float32)
    expected = reference(probabilities, labels, k)
    actual = encoded(probabilities, labels, k)
    assert actual == expected
    assert len(actual.predictions) == count


def test_equal_length_pieces_take_the_array_path_and_others_the_join() -> None:
    # Both paths are compared with the message API above; this keeps each of them used.
    assert PredictionEncoder(DIGITS)._uniform and PredictionEncoder(EQUAL)._uniform
    assert not PredictionEncoder(ODD)._uniform and not PredictionEncoder(MANY)._uniform


def test_ties_rank_in_class_order_and_pick_the_first_class() -> None:
    probabilities = np.array([[0.25, 0.25, 0.25, 0.25], [0.0, 0.5, 0.0, 0.5]], np.float32)
    actual = encoded(probabilities, DIGITS[:4], 4)
    assert actual == reference(probabilities, DIGITS[:4], 4)
    assert [p.class_index for p in actual.predictions] == [0, 1]
    assert [t.label for t in actual.predictions[1].top] == ["1", "3", "0", "2"]


def test_a_class_count_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match="3 classes, the labels 10"):
        PredictionEncoder(DIGITS).encode(np.zeros((2, 3), np.float32), 0)


def test_encoders_are_reused_per_label_set() -> None:
    assert encoder_for(tuple(DIGITS)) is encoder_for(tuple(DIGITS))
    assert encoder_for(tuple(DIGITS)) is not encoder_for(tuple(ODD))
