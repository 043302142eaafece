"""TensorFlow's thread pools, sized by the server's settings before the first model loads."""

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from digits.service.settings import InvalidSettings, ServingSettings
from digits.v1 import classifier_pb2, classifier_pb2_grpc

from support.models import expected_probabilities, install
from support.serve_process import serving_process


def test_thread_counts_are_zero_or_more() -> None:
    with pytest.raises(InvalidSettings) as raised:
        ServingSettings.from_options(intra_op_threads=-1, inter_op_threads=-2)
    assert raised.value.problems == ["intra_op_threads must be 0 or more, got -1",
                                     "inter_op_threads must be 0 or more, got -2"]


def test_serve_runs_the_model_on_the_pools_it_was_given(
        model_templates: Any, models_root: Path, tmp_path: Path) -> None:
    install(model_templates.dense_a, models_root, "mnist", 1)
    log = tmp_path / "serve.log"
    pixels = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    with serving_process(models_root, log, "--intra-op-threads", "1",
                         "--inter-op-threads", "1") as served, \
            grpc.insecure_channel(served.target) as channel:
        answer = classifier_pb2_grpc.ClassifierStub(channel).Classify(
            classifier_pb2.ClassifyRequest(packed_pixels=pixels.tobytes()), timeout=30)
    # TensorFlow's own reading of its pools, logged before the model loaded.
    text = log.read_text()
    assert "TensorFlow pools: intra-op 1 thread, inter-op 1 thread" in text
    assert text.index("TensorFlow pools") < text.index("loaded mnist version 1")
    np.testing.assert_allclose(
        [list(prediction.probabilities) for prediction in answer.predictions],
        expected_probabilities(model_templates.weights_a, pixels), rtol=1e-5, atol=1e-6)


def test_pools_cannot_change_once_tensorflow_runs() -> None:
    script = textwrap.dedent("""
        import tensorflow as tf
        from digits.modelstore.tensorflow_threads import configure_threads
        tf.constant(1.0) + 1.0  # TensorFlow's runtime starts with its default pools
        configure_threads(0, 0)  # nothing asked: nothing to refuse
        try:
            configure_threads(1, 0)
        except ValueError as error:
            print(error)
    """)
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True,
                               text=True, timeout=120, check=True)
    assert completed.stdout.strip() == (
        "intra_op_threads 1: TensorFlow has already started in this process with one "
        "thread per core and cannot resize its pools; set it before the first model loads")
