"""The from-scratch NumPy network: gradient check, learning, and its exported twin."""

from pathlib import Path

import numpy as np
import pytest

from digits.jobs import numpy_net
from digits.jobs.numpy_net import NumpyNetwork


def _numerical_gradient(loss_of: object, parameter: np.ndarray, step: float = 1e-6
                        ) -> np.ndarray:
    """Central differences, one coordinate at a time (parameter is perturbed in place)."""
    assert callable(loss_of)
    gradient = np.zeros_like(parameter)
    for index in np.ndindex(parameter.shape):
        original = parameter[index]
        parameter[index] = original + step
        above = loss_of()
        parameter[index] = original - step
        below = loss_of()
        parameter[index] = original
        gradient[index] = (above - below) / (2 * step)
    return gradient


@pytest.mark.parametrize("layer_sizes", [(5, 1), (6, 4, 1), (7, 5, 3, 1)])
def test_backward_pass_matches_numerical_gradients(layer_sizes: tuple[int, ...]) -> None:
    generator = np.random.default_rng(1)
    network = NumpyNetwork.initialise(layer_sizes, seed=2)
    # Non-zero biases keep ReLU inputs away from the kink, where differences lie.
    for bias in network.biases:
        bias += generator.normal(0, 0.5, size=bias.shape)
    inputs = generator.normal(size=(9, layer_sizes[0]))
    targets = generator.integers(0, 2, size=9).astype(float)

    _, weight_gradients, bias_gradients = network.loss_and_gradients(inputs, targets)

    def loss_of() -> float:
        return network.loss_and_gradients(inputs, targets)[0]

    for analytic, parameter in zip(weight_gradients + bias_gradients,
                                   network.weights + network.biases, strict=True):
        numeric = _numerical_gradient(loss_of, parameter)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)


def test_loss_and_sigmoid_are_stable_for_extreme_logits() -> None:
    logits = np.array([-1000.0, -30.0, 0.0, 30.0, 1000.0])
    probabilities = numpy_net.sigmoid(logits)
    assert np.all(np.isfinite(probabilities)) and probabilities[2] == 0.5
    loss = numpy_net.binary_cross_entropy(logits, np.array([0.0, 0.0, 1.0, 1.0, 1.0]))
    assert np.isfinite(loss) and loss == pytest.approx(np.log(2) / 5, rel=1e-6)


def test_learns_a_small_separable_problem() -> None:
    generator = np.random.default_rng(0)
    inputs = generator.normal(size=(400, 2))
    targets = (inputs[:, 0] + 2 * inputs[:, 1] > 0).astype(float)  # a line separates them
    network = NumpyNetwork.initialise((2, 8, 1), seed=0)
    before = numpy_net.accuracy(network, inputs, targets)
    history = numpy_net.train(network, (inputs[:300], targets[:300]),
                              (inputs[300:], targets[300:]), epochs=30, batch_size=16,
                              learning_rate=0.5, seed=0, progress=False)
    assert history["loss"][-1] < history["loss"][0] / 3
    assert history["val_accuracy"][-1] >= 0.95 > before


def test_training_is_deterministic_for_a_seed() -> None:
    generator = np.random.default_rng(5)
    inputs = generator.normal(size=(64, 3))
    targets = (inputs[:, 0] > 0).astype(float)

    def trained(seed: int) -> NumpyNetwork:
        network = NumpyNetwork.initialise((3, 4, 1), seed=seed)
        numpy_net.train(network, (inputs, targets), (inputs, targets), epochs=3,
                        batch_size=8, learning_rate=0.1, seed=seed, progress=False)
        return network

    first, second, other = trained(7), trained(7), trained(8)
    assert all(np.array_equal(a, b) for a, b in zip(first.weights, second.weights, strict=True))
    assert not np.array_equal(first.weights[0], other.weights[0])


def test_on_epoch_sees_each_epoch_figures_as_the_history_records_them() -> None:
    generator = np.random.default_rng(3)
    inputs = generator.normal(size=(40, 3))
    targets = (inputs[:, 1] > 0).astype(float)
    seen: list[tuple[int, dict[str, float]]] = []
    history = numpy_net.train(NumpyNetwork.initialise((3, 4, 1), seed=0), (inputs, targets),
                              (inputs, targets), epochs=3, batch_size=8, learning_rate=0.1,
                              seed=0, progress=False,
                              on_epoch=lambda epoch, figures: seen.append((epoch, dict(figures))))
    assert [epoch for epoch, _ in seen] == [1, 2, 3]
    for key, values in history.items():
        assert [figures[key] for _, figures in seen] == values


@pytest.mark.parametrize("layer_sizes", [(784,), (784, 3), (10, 4, 2)])
def test_rejects_layer_sizes_without_a_single_output(layer_sizes: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="one output unit"):
        NumpyNetwork.initialise(layer_sizes, seed=0)


def test_exported_model_equals_the_numpy_forward_pass(models_root: Path,
                                                      mnist_path: Path) -> None:
    from digits.jobs.data import load_mnist
    from digits.jobs.export import DenseStackServingModule, export_model
    from digits.modelstore.saved_model import load_version
    from digits.v1.model_card_pb2 import ModelCard

    network = NumpyNetwork.initialise((784, 16, 8, 1), seed=3)
    for bias in network.biases:
        bias += 0.1  # non-zero biases, so their export is exercised too
    version_dir = export_model(DenseStackServingModule(network.layers(), output="sigmoid"),
                               models_root, "numpy-twin", ModelCard(labels=["0", "1"]))
    loaded = load_version(version_dir)

    pixels = load_mnist(mnist_path).test.images[:300]
    served = loaded.predict(pixels)
    expected_one = network.predict_probability(pixels.reshape(300, -1) / 255.0)
    assert served.shape == (300, 2) and served.dtype == np.float32
    np.testing.assert_allclose(served[:, 1], expected_one, atol=1e-5)
    np.testing.assert_allclose(served[:, 0], 1.0 - expected_one, atol=1e-5)
    # Not a vacuous comparison: the outputs differ from image to image.
    assert expected_one.std() > 0.01
