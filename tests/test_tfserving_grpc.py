"""TensorFlow Serving's gRPC API, driven by the tensorflow-serving-api stubs and
TensorFlow's own tensor helpers, as an existing TF Serving client would."""

import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import pytest_asyncio
import tensorflow as tf
from PIL import Image
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from digits.v1 import classifier_pb2

from support.models import expected_probabilities, install
from support.servers import Running, loopback_settings, running_server, wait_available

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(model_templates: Any, tmp_path_factory: pytest.TempPathFactory
                 ) -> AsyncIterator[Running]:
    models_root = tmp_path_factory.mktemp("models")
    install(model_templates.dense_a, models_root, "mnist", 1)
    install(model_templates.dense_b, models_root, "mnist", 2)
    async with running_server(loopback_settings(models_root)) as running:
        await wait_available(running, "mnist", [1, 2])
        yield running


def predict_request(inputs: dict[str, Any], name: str = "mnist", version: int | None = None,
                    **spec: Any) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    for key, value in spec.items():
        setattr(request.model_spec, key, value)
    if version is not None:
        request.model_spec.version.value = version
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return request


async def test_predict_gives_the_probabilities_of_the_version_asked_for(
        served: Running, model_templates: Any, mnist_path: Path) -> None:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(served.channel)
    pixels = np.load(mnist_path)["x_test"][:32]
    for version, weights in ((None, model_templates.weights_b), (1, model_templates.weights_a)):
        response = await stub.Predict(predict_request({"pixels": pixels}, version=version,
                                                      signature_name="serving_default"),
                                      timeout=10)
        assert response.model_spec.name == "mnist"
        assert response.model_spec.version.value == (version or 2)
        probabilities = tf.make_ndarray(response.outputs["probabilities"])
        assert probabilities.shape == (32, 10)
        np.testing.assert_allclose(probabilities, expected_probabilities(weights, pixels),
                                   atol=1e-5)


async def test_predict_takes_image_files_as_strings(served: Running, mnist_path: Path) -> None:
    files = []
    for digit in np.load(mnist_path)["x_test"][:3]:
        buffer = io.BytesIO()
        Image.fromarray(255 - digit).resize((56, 56)).save(buffer, "PNG")
        files.append(buffer.getvalue())
    stub = prediction_service_pb2_grpc.PredictionServiceStub(served.channel)
    response = await stub.Predict(predict_request({"images": np.array(files, dtype=object)}),
                                  timeout=10)
    probabilities = tf.make_ndarray(response.outputs["probabilities"])
    reference = await served.stub.Classify(classifier_pb2.ClassifyRequest(
        images=[classifier_pb2.Image(encoded=data) for data in files]), timeout=10)
    np.testing.assert_allclose(
        probabilities, [list(p.probabilities) for p in reference.predictions], atol=1e-6)


async def test_model_metadata_describes_the_signature(served: Running) -> None:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(served.channel)
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "mnist"
    response = await stub.GetModelMetadata(request, timeout=10)
    assert (response.model_spec.name, response.model_spec.version.value) == ("mnist", 2)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signatures)
    signature = signatures.signature_def["serving_default"]
    pixels = signature.inputs["pixels"]
    assert pixels.dtype == tf.uint8.as_datatype_enum
    assert [dim.size for dim in pixels.tensor_shape.dim] == [-1, 28, 28]
    output = signature.outputs["probabilities"]
    assert (output.dtype, [d.size for d in output.tensor_shape.dim]) == (
        tf.float32.as_datatype_enum, [-1, 10])


async def test_model_status_lists_versions_and_states(served: Running) -> None:
    stub = model_service_pb2_grpc.ModelServiceStub(served.channel)
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "mnist"
    response = await stub.GetModelStatus(request, timeout=10)
    available = get_model_status_pb2.ModelVersionStatus.AVAILABLE
    assert [(v.version, v.state) for v in response.model_version_status] == [
        (2, available), (1, available)]
    request.model_spec.version.value = 1
    response = await stub.GetModelStatus(request, timeout=10)
    assert [v.version for v in response.model_version_status] == [1]
    request.model_spec.version.value = 7
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.GetModelStatus(request, timeout=10)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


ERRORS = [
    ("unknown model", dict(name="fashion"), grpc.StatusCode.NOT_FOUND, "no model named"),
    ("unknown version", dict(version=9), grpc.StatusCode.NOT_FOUND, "no version 9 loaded"),
    ("version label", dict(version_label="stable"), grpc.StatusCode.NOT_FOUND,
     "has no label 'stable'"),
    ("other signature", dict(signature_name="classify"), grpc.StatusCode.INVALID_ARGUMENT,
     "model_spec.signature_name: 'classify'"),
]


@pytest.mark.parametrize(("case", "spec", "code", "message"), ERRORS,
                         ids=[case[0] for case in ERRORS])
async def test_predict_errors(served: Running, case: str, spec: dict[str, Any],
                              code: grpc.StatusCode, message: str) -> None:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(served.channel)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Predict(predict_request({"pixels": np.zeros((1, 28, 28), np.uint8)},
                                           **spec), timeout=10)
    assert raised.value.code() == code
    assert message in raised.value.details()


@pytest.mark.parametrize(("inputs", "message"), [
    ({"pixels": np.zeros((1, 28, 28), np.float32)}, "inputs['pixels'].dtype: DT_FLOAT"),
    ({"pixels": np.zeros((1, 784), np.uint8)}, "inputs['pixels'].shape: [1, 784]"),
    ({"x": np.zeros((1, 28, 28), np.uint8)}, "inputs['x']: not an input of this model"),
    ({}, "inputs: 0 given"),
], ids=["dtype", "shape", "name", "none"])
async def test_malformed_inputs_are_invalid_argument(
        served: Running, inputs: dict[str, Any], message: str) -> None:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(served.channel)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Predict(predict_request(inputs), timeout=10)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in raised.value.details()


async def test_methods_digits_does_not_serve_are_unimplemented(served: Running) -> None:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(served.channel)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Classify(classification_pb2.ClassificationRequest(), timeout=10)
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
