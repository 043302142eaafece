"""MNIST for the jobs: load, verify, split off validation data, fingerprint, filter digits.

Verification policy (``check``):

- ``"canonical"`` (the default): the file must be exactly the MNIST of
  ``../shared/data/README.md``: the four arrays with their shapes, dtypes and the
  sha256 of each array's bytes. Anything else fails, naming the file and what is wrong,
  because a model card that claims "MNIST" must mean that data.
- ``"structure"``: any file of the same layout (four uint8 arrays, images [N, 28, 28],
  labels [N] in 0..9) is accepted; differences from canonical MNIST are logged as
  warnings and visible in the dataset fingerprint. For subsets and other digit sets.
"""

import hashlib
import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digits.v1.model_card_pb2 import DatasetFingerprint

log = logging.getLogger(__name__)

ARRAY_NAMES = ("x_train", "y_train", "x_test", "y_test")
KERAS_SOURCE = "keras-download"
CHECKS = ("canonical", "structure")
CANONICAL_SHAPES = {
    "x_train": (60000, 28, 28),
    "y_train": (60000,),
    "x_test": (10000, 28, 28),
    "y_test": (10000,),
}
CANONICAL_SHA256 = {
    "x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "y_train": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "y_test": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}


class DataError(ValueError):
    """The data file is missing, unreadable, or not MNIST in the expected layout."""


@dataclass(frozen=True)
class Split:
    """Images (uint8 [N, 28, 28]) and their labels (uint8 [N])."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def first(self, count: int) -> "Split":
        """The first ``count`` examples."""
        return Split(self.images[:count], self.labels[:count])

    def subset(self, indices: np.ndarray) -> "Split":
        """The examples at ``indices``, in that order."""
        return Split(self.images[indices], self.labels[indices])

    def plus(self, other: "Split") -> "Split":
        """These examples followed by ``other``'s."""
        return Split(np.concatenate([self.images, other.images]),
                     np.concatenate([self.labels, other.labels]))


@dataclass(frozen=True)
class Mnist:
    """The verified arrays, where they came from, and their sha256s."""

    source: str
    train: Split
    test: Split
    array_sha256: dict[str, str]


def array_sha256(array: np.ndarray) -> str:
    """sha256 of an array's raw bytes (``a.tobytes()``), as the data README lists them."""
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def load_mnist(path: Path | None, check: str = "canonical") -> Mnist:
    """Load and verify ``path`` (an ``mnist.npz``); without a path, Keras's download.

    Raises ``DataError`` with a message naming the file and what is wrong.
    """
    if check not in CHECKS:
        raise ValueError(f"check must be one of {CHECKS}, got {check!r}")
    if path is None:
        arrays, source = _download(), KERAS_SOURCE
    else:
        arrays, source = _read_npz(Path(path)), str(path)
    return verify(arrays, source, check)


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        raise DataError(f"{path}: no such file; pass --data (or DIGITS_MNIST) naming mnist.npz")
    if path.is_dir():
        raise DataError(f"{path}: is a directory; pass the mnist.npz file itself")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [name for name in ARRAY_NAMES if name not in archive.files]
            if missing:
                raise DataError(
                    f"{path}: missing arrays {missing} (has {sorted(archive.files)}); "
                    f"an MNIST file holds {list(ARRAY_NAMES)}"
                )
            return {name: archive[name] for name in ARRAY_NAMES}
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        # np.load raises any of these for truncated, garbled or non-npz files.
        raise DataError(f"{path}: not a readable .npz file ({error}); is it corrupt?") from error


def _download() -> dict[str, np.ndarray]:
    """Keras's cached download of MNIST (needs network on first use)."""
    try:
        import keras

        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    except Exception as error:  # the download raises many types when offline
        raise DataError(
            f"cannot download MNIST through Keras ({error}); pass --data (or DIGITS_MNIST) "
            "naming a local mnist.npz"
        ) from error
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def verify(arrays: dict[str, np.ndarray], source: str, check: str = "canonical") -> Mnist:
    """Check layout, dtypes and label range, then the canonical facts; build ``Mnist``."""
    for name in ARRAY_NAMES:
        array = arrays[name]
        if array.dtype != np.uint8:
            raise DataError(f"{source}: {name} has dtype {array.dtype}, expected uint8")
        expected_rank = 3 if name.startswith("x") else 1
        if array.ndim != expected_rank or (expected_rank == 3 and array.shape[1:] != (28, 28)):
            wanted = "[N, 28, 28]" if expected_rank == 3 else "[N]"
            raise DataError(f"{source}: {name} has shape {array.shape}, expected {wanted}")
    for part in ("train", "test"):
        images, labels = arrays[f"x_{part}"], arrays[f"y_{part}"]
        if len(images) != len(labels):
            raise DataError(f"{source}: x_{part} has {len(images)} images but y_{part} "
                            f"has {len(labels)} labels")
        if len(labels) == 0:
            raise DataError(f"{source}: x_{part} is empty")
        if labels.max() > 9:
            raise DataError(f"{source}: y_{part} holds label {int(labels.max())}, "
                            "expected digits 0..9")
    digests = {name: array_sha256(arrays[name]) for name in ARRAY_NAMES}
    differences = _canonical_differences(arrays, digests)
    if differences:
        message = f"{source}: not the canonical MNIST: " + "; ".join(differences)
        if check == "canonical":
            raise DataError(message + " (use --data-check structure to accept other data "
                            "of the same layout)")
        log.warning("%s", message)
    return Mnist(
        source=source,
        train=Split(arrays["x_train"], arrays["y_train"]),
        test=Split(arrays["x_test"], arrays["y_test"]),
        array_sha256=digests,
    )


def _canonical_differences(arrays: dict[str, np.ndarray], digests: dict[str, str]) -> list[str]:
    differences = []
    for name in ARRAY_NAMES:
        if arrays[name].shape != CANONICAL_SHAPES[name]:
            differences.append(f"{name} has shape {arrays[name].shape}, "
                               f"canonical {CANONICAL_SHAPES[name]}")
        elif digests[name] != CANONICAL_SHA256[name]:
            differences.append(f"{name} sha256 is {digests[name][:12]}..., "
                               f"canonical {CANONICAL_SHA256[name][:12]}...")
    return differences


def keep_digits(split: Split, digits: tuple[int, ...]) -> Split:
    """The examples whose label is in ``digits``, labels renumbered 0..len(digits)-1."""
    mask = np.isin(split.labels, digits)
    lookup = np.zeros(10, dtype=np.uint8)
    lookup[list(digits)] = np.arange(len(digits), dtype=np.uint8)
    return Split(split.images[mask], lookup[split.labels[mask]])


def split_validation(split: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    """Hold out ``fraction`` of each class (seeded) as validation; return (train, validation).

    Stratified, so a small training slice still validates on every class in proportion.
    Both parts keep the original order of the examples.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must be between 0 and 1, got {fraction}")
    generator = np.random.default_rng(seed)
    held_out = []
    for label in np.unique(split.labels):
        members = np.flatnonzero(split.labels == label)
        count = round(len(members) * fraction)
        held_out.append(generator.choice(members, size=count, replace=False))
    validation_mask = np.zeros(len(split), dtype=bool)
    validation_mask[np.concatenate(held_out)] = True
    train, validation = np.flatnonzero(~validation_mask), np.flatnonzero(validation_mask)
    if len(train) == 0 or len(validation) == 0:
        raise ValueError(f"{len(split)} examples are too few to hold out {fraction:.0%} "
                         "for validation; use a larger --train-limit")
    return split.subset(train), split.subset(validation)


def fingerprint(mnist: Mnist, train: int, validation: int, test: int,
                digits: tuple[int, ...]) -> DatasetFingerprint:
    """The card's record of which data a model saw (array sha256s and example counts)."""
    return DatasetFingerprint(
        source=mnist.source,
        array_sha256=mnist.array_sha256,
        train_examples=train,
        validation_examples=validation,
        test_examples=test,
        digits=list(digits),
    )
