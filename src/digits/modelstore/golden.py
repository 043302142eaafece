"""Golden sets: labelled sample images a version must classify well before it takes traffic.

A golden set is an ``.npz`` file of two arrays: ``images``, uint8 ``[N, 28, 28]``, and
``labels``, integer ``[N]``, each an index into the model card's labels. A training job
writes one into every version it exports (``golden.npz``, listed in the card with its
sha256 like every file); an operator may place one for a whole model at
``<models>/<name>/golden.npz``, which then takes precedence over the versions' own.
"""

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digits.api import IMAGE_SIZE

GOLDEN_FILENAME = "golden.npz"
# Large enough to measure accuracy to a fraction of a percent, small enough to evaluate
# in well under a second on two cores.
MAX_EXAMPLES = 10_000
# The largest file read: MAX_EXAMPLES uncompressed images, labels and zip headers.
MAX_FILE_BYTES = MAX_EXAMPLES * (IMAGE_SIZE * IMAGE_SIZE + 8) + (1 << 16)


class InvalidGoldenSet(ValueError):
    """A golden set file that cannot be used; the message names the problem and the fix."""


@dataclass(frozen=True)
class GoldenSet:
    """Labelled images, and where they came from (for reports)."""

    images: np.ndarray  # uint8 [N, 28, 28]
    labels: np.ndarray  # int64 [N], indices into the card's labels
    source: str

    def __len__(self) -> int:
        return len(self.labels)


def sample(images: np.ndarray, labels: np.ndarray, count: int = 1000, seed: int = 0
           ) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random sample of labelled images (all of them when there are fewer): what
    a job exports as its version's golden set, drawn from the test set its card's
    accuracy was measured on."""
    order = np.random.default_rng(seed).permutation(len(labels))[:count]
    order.sort()  # the test set's order, so the file compresses as well as it can
    return np.asarray(images)[order], np.asarray(labels)[order]


def encode(images: np.ndarray, labels: np.ndarray) -> bytes:
    """A golden set's file contents (compressed ``.npz``), checked as readers check it."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, images=np.asarray(images, np.uint8),
                        labels=np.asarray(labels, np.int64))
    contents = buffer.getvalue()
    decode(contents, "the golden set being written", None)
    return contents


def read(path: Path, classes: int | None) -> GoldenSet:
    """Read and check the golden set at ``path``; raise ``InvalidGoldenSet`` naming why."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise InvalidGoldenSet(
                f"{path}: {size:,} bytes, more than the {MAX_FILE_BYTES:,} a golden set of "
                f"at most {MAX_EXAMPLES:,} images takes; keep a smaller sample")
        contents = path.read_bytes()
    except OSError as error:
        raise InvalidGoldenSet(f"{path}: cannot read it: {error}") from error
    return decode(contents, str(path), classes)


def decode(contents: bytes, source: str, classes: int | None) -> GoldenSet:
    """Parse a golden set file's contents; ``classes`` bounds the labels when known."""
    try:
        with np.load(io.BytesIO(contents), allow_pickle=False) as arrays:
            missing = {"images", "labels"} - set(arrays.files)
            if missing:
                raise InvalidGoldenSet(
                    f"{source}: no {' or '.join(sorted(missing))} array; write 'images' "
                    "(uint8 [N, 28, 28]) and 'labels' (integer [N]) with "
                    "digits.modelstore.golden.encode")
            images = _bounded(arrays, "images", source)
            labels = _bounded(arrays, "labels", source)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        if isinstance(error, InvalidGoldenSet):
            raise
        raise InvalidGoldenSet(f"{source}: not a readable .npz file ({error}); write it "
                               "with digits.modelstore.golden.encode") from error
    return GoldenSet(_check_images(images, source), _check_labels(labels, len(images),
                                                                  source, classes), source)


def _bounded(arrays: np.lib.npyio.NpzFile, name: str, source: str) -> np.ndarray:
    """One array, refused before it is read when its header promises too much."""
    archive = arrays.zip
    size = archive.getinfo(f"{name}.npy").file_size if archive is not None else 0
    if size > MAX_FILE_BYTES:
        raise InvalidGoldenSet(f"{source}: {name} take {size:,} bytes uncompressed, more than "
                               f"{MAX_EXAMPLES:,} images take; keep a smaller sample")
    return np.asarray(arrays[name])


def _check_images(images: np.ndarray, source: str) -> np.ndarray:
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE,
                                                                            IMAGE_SIZE):
        raise InvalidGoldenSet(f"{source}: images are {images.dtype} {list(images.shape)}; "
                               f"expected uint8 [N, {IMAGE_SIZE}, {IMAGE_SIZE}]")
    if not 0 < len(images) <= MAX_EXAMPLES:
        raise InvalidGoldenSet(f"{source}: {len(images)} images; a golden set holds 1 to "
                               f"{MAX_EXAMPLES:,}")
    return images


def _check_labels(labels: np.ndarray, count: int, source: str,
                  classes: int | None) -> np.ndarray:
    if labels.dtype.kind not in "iu" or labels.shape != (count,):
        raise InvalidGoldenSet(f"{source}: labels are {labels.dtype} {list(labels.shape)}; "
                               f"expected integer [{count}], one class index per image")
    if len(labels) and (labels.min() < 0 or (classes is not None and labels.max() >= classes)):
        raise InvalidGoldenSet(
            f"{source}: labels range from {labels.min()} to {labels.max()}; they index the "
            f"card's labels, 0 to {(classes or 1) - 1}")
    return labels.astype(np.int64)
