"""Loading an exported model version: card checks first, then the SavedModel."""

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from digits.api import IMAGE_SIZE
from digits.modelstore.card import read_card, verify_files
from digits.modelstore.signature import INPUT_NAME, OUTPUT_NAME, SIGNATURE_KEY
from digits.v1.model_card_pb2 import ModelCard

log = logging.getLogger(__name__)


class InvalidModel(ValueError):
    """A version directory that is not a servable model (card, files or signature wrong)."""


@dataclass
class LoadedModel:
    """A validated model version, callable on uint8 [N, 28, 28] pixel arrays."""

    path: Path
    card: ModelCard
    _signature: Any
    _module: Any  # kept referenced: the signature's variables live in it

    @functools.cached_property
    def labels(self) -> tuple[str, ...]:
        """The card's labels, in output order (copied once: requests read them often)."""
        return tuple(self.card.labels)

    def predict(self, pixels: np.ndarray) -> np.ndarray:
        """Class probabilities, float32 [N, classes], for uint8 pixels [N, 28, 28]."""
        import tensorflow as tf

        if pixels.dtype != np.uint8 or pixels.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(
                f"expected uint8 pixels of shape [N, 28, 28], got {pixels.dtype} {pixels.shape}"
            )
        outputs = self._signature(**{INPUT_NAME: tf.constant(pixels)})
        return np.asarray(outputs[OUTPUT_NAME].numpy(), dtype=np.float32)


def load_version(version_dir: Path) -> LoadedModel:
    """Validate and load one version directory; raise ``InvalidModel`` naming the problem.

    Checks, in order: the card parses, every file's sha256 matches it, the SavedModel
    loads, and its signature takes uint8 [N, 28, 28] and returns [N, len(labels)].
    """
    import tensorflow as tf

    version_dir = Path(version_dir)
    try:
        card = read_card(version_dir)
        verify_files(version_dir, card)
    except ValueError as error:
        raise InvalidModel(str(error)) from error
    if not card.labels:
        raise InvalidModel(f"{version_dir}: the model card lists no labels")
    try:
        module = tf.saved_model.load(str(version_dir))
    except Exception as error:  # TensorFlow raises many types for a broken SavedModel
        raise InvalidModel(f"{version_dir}: cannot load the SavedModel: {error}") from error
    signature = module.signatures.get(SIGNATURE_KEY)
    if signature is None:
        raise InvalidModel(f"{version_dir}: the SavedModel has no {SIGNATURE_KEY!r} signature")
    inputs = signature.structured_input_signature[1]
    spec = inputs.get(INPUT_NAME)
    if spec is None or spec.dtype != tf.uint8 or spec.shape.as_list()[1:] != [28, 28]:
        raise InvalidModel(
            f"{version_dir}: signature input must be {INPUT_NAME!r} uint8 [N, 28, 28], "
            f"got {inputs}"
        )
    outputs = signature.structured_outputs
    if OUTPUT_NAME not in outputs:
        raise InvalidModel(f"{version_dir}: signature has no {OUTPUT_NAME!r} output")
    classes = outputs[OUTPUT_NAME].shape.as_list()[-1]
    if classes != len(card.labels):
        raise InvalidModel(
            f"{version_dir}: signature returns {classes} classes but the card lists "
            f"{len(card.labels)} labels"
        )
    return LoadedModel(path=version_dir, card=card, _signature=signature, _module=module)
