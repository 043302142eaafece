"""A from-scratch binary classifier in NumPy: ReLU hidden layers, sigmoid output, SGD.

Forward and backward passes are written out by hand (no autodiff), in the spirit of
micrograd; tests check the backward pass against numerical gradients.
"""

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

Layer = tuple[np.ndarray, np.ndarray]
# Called after each epoch with its number (from 1) and that epoch's history figures.
EpochCallback = Callable[[int, Mapping[str, float]], None]


@dataclass
class NumpyNetwork:
    """Dense layers (weights [in, out], biases [out]); ReLU between, one sigmoid unit out."""

    weights: list[np.ndarray]
    biases: list[np.ndarray]

    @classmethod
    def initialise(cls, layer_sizes: Sequence[int], seed: int) -> "NumpyNetwork":
        """He-initialised network, e.g. ``layer_sizes=(784, 64, 1)``; biases start at zero."""
        if len(layer_sizes) < 2 or layer_sizes[-1] != 1 or min(layer_sizes) < 1:
            raise ValueError(f"layer_sizes must run from the input size to one output unit, "
                             f"got {tuple(layer_sizes)}")
        generator = np.random.default_rng(seed)
        weights = [generator.normal(0.0, np.sqrt(2.0 / fan_in), size=(fan_in, fan_out))
                   for fan_in, fan_out in itertools.pairwise(layer_sizes)]
        biases = [np.zeros(fan_out) for fan_out in layer_sizes[1:]]
        return cls(weights, biases)

    def layers(self) -> list[Layer]:
        """(weights, biases) per layer, as ``DenseStackServingModule`` takes them."""
        return list(zip(self.weights, self.biases, strict=True))

    def forward(self, inputs: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Output logits [N] and the activations each layer received (for backward)."""
        activations = [inputs]
        hidden = inputs
        for weight, bias in zip(self.weights[:-1], self.biases[:-1], strict=True):
            hidden = np.maximum(hidden @ weight + bias, 0.0)
            activations.append(hidden)
        logits = hidden @ self.weights[-1] + self.biases[-1]
        return logits[:, 0], activations

    def predict_probability(self, inputs: np.ndarray) -> np.ndarray:
        """Probability of class 1 for each row of ``inputs`` (floats in [0, 1], [N, 784])."""
        logits, _ = self.forward(inputs)
        return sigmoid(logits)

    def loss_and_gradients(
        self, inputs: np.ndarray, targets: np.ndarray
    ) -> tuple[float, list[np.ndarray], list[np.ndarray]]:
        """Mean binary cross-entropy and its gradients for every weight and bias."""
        logits, activations = self.forward(inputs)
        loss = binary_cross_entropy(logits, targets)
        # d(mean BCE)/d(logit) of a sigmoid unit simplifies to (p - y) / N.
        upstream = ((sigmoid(logits) - targets) / len(targets))[:, None]
        weight_gradients: list[np.ndarray] = []
        bias_gradients: list[np.ndarray] = []
        for index in range(len(self.weights) - 1, -1, -1):
            layer_input = activations[index]
            weight_gradients.insert(0, layer_input.T @ upstream)
            bias_gradients.insert(0, upstream.sum(axis=0))
            if index > 0:
                # Back through the weights, then through the ReLU that produced layer_input.
                upstream = (upstream @ self.weights[index].T) * (layer_input > 0.0)
        return loss, weight_gradients, bias_gradients

    def sgd_step(self, weight_gradients: list[np.ndarray], bias_gradients: list[np.ndarray],
                 learning_rate: float) -> None:
        """One plain gradient-descent update, in place."""
        for weight, gradient in zip(self.weights, weight_gradients, strict=True):
            weight -= learning_rate * gradient
        for bias, gradient in zip(self.biases, bias_gradients, strict=True):
            bias -= learning_rate * gradient


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Logistic function, without overflow warnings for large negative logits."""
    return np.exp(-np.logaddexp(0.0, -logits))


def binary_cross_entropy(logits: np.ndarray, targets: np.ndarray) -> float:
    """Mean BCE computed from logits: log(1 + e^z) - y z, stable for any z."""
    return float(np.mean(np.logaddexp(0.0, logits) - targets * logits))


def accuracy(network: NumpyNetwork, inputs: np.ndarray, targets: np.ndarray) -> float:
    """Fraction of rows whose thresholded probability (0.5) equals the 0/1 target."""
    return float(np.mean((network.predict_probability(inputs) >= 0.5) == (targets >= 0.5)))


def train(
    network: NumpyNetwork,
    train_data: tuple[np.ndarray, np.ndarray],
    validation_data: tuple[np.ndarray, np.ndarray],
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    progress: bool = True,
    on_epoch: EpochCallback | None = None,
) -> dict[str, list[float]]:
    """Mini-batch SGD over shuffled batches; returns per-epoch loss and accuracy curves.

    The curves use Keras's keys (loss, accuracy, val_loss, val_accuracy) so the same
    report code plots either network. ``on_epoch`` sees each epoch's figures as they
    come (the notebook draws a live loss curve with it).
    """
    if epochs < 1 or batch_size < 1 or learning_rate <= 0:
        raise ValueError("epochs and batch_size must be >= 1 and learning_rate > 0")
    inputs, targets = train_data
    validation_inputs, validation_targets = validation_data
    generator = np.random.default_rng(seed)
    history: dict[str, list[float]] = {"loss": [], "accuracy": [], "val_loss": [],
                                       "val_accuracy": []}
    batches_per_epoch = -(-len(targets) // batch_size)
    with tqdm(total=epochs * batches_per_epoch, unit="batch", disable=not progress,
              desc="numpy sgd") as bar:
        for epoch in range(1, epochs + 1):
            order = generator.permutation(len(targets))
            for start in range(0, len(order), batch_size):
                batch = order[start:start + batch_size]
                _, weight_gradients, bias_gradients = network.loss_and_gradients(
                    inputs[batch], targets[batch])
                network.sgd_step(weight_gradients, bias_gradients, learning_rate)
                bar.update(1)
            # Whole-set figures after the epoch (not running averages), like Keras's val_*.
            figures = {
                "loss": binary_cross_entropy(network.forward(inputs)[0], targets),
                "accuracy": accuracy(network, inputs, targets),
                "val_loss": binary_cross_entropy(network.forward(validation_inputs)[0],
                                                 validation_targets),
                "val_accuracy": accuracy(network, validation_inputs, validation_targets),
            }
            for key, value in figures.items():
                history[key].append(value)
            bar.set_postfix(loss=f"{figures['loss']:.4f}",
                            val_accuracy=f"{figures['val_accuracy']:.4f}")
            if on_epoch is not None:
                on_epoch(epoch, figures)
    return history
