"""MNIST loading and verification, validation splits, digit filtering, fingerprints."""

import logging
from pathlib import Path

import numpy as np
import pytest

from digits.jobs import data


def _arrays(train: int = 40, test: int = 20, seed: int = 0) -> dict[str, np.ndarray]:
    generator = np.random.default_rng(seed)
    return {
        "x_train": generator.integers(0, 256, size=(train, 28, 28), dtype=np.uint8),
        "y_train": (np.arange(train) % 10).astype(np.uint8),
        "x_test": generator.integers(0, 256, size=(test, 28, 28), dtype=np.uint8),
        "y_test": (np.arange(test) % 10).astype(np.uint8),
    }


def _write(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def test_real_file_is_canonical_mnist(mnist_path: Path) -> None:
    mnist = data.load_mnist(mnist_path)
    assert mnist.array_sha256 == data.CANONICAL_SHA256
    # Facts from ../shared/data/README.md, independent of the sha256s.
    assert mnist.train.labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert mnist.test.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(mnist.test.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958,
                                                       1028, 974, 1009]
    assert mnist.source == str(mnist_path)


def test_missing_file_names_the_file_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(data.DataError, match=r"nowhere\.npz: no such file; pass --data"):
        data.load_mnist(tmp_path / "nowhere.npz")


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(data.DataError, match="is a directory"):
        data.load_mnist(tmp_path)


@pytest.mark.parametrize("contents", [b"", b"not a zip at all", b"PK\x03\x04garbage"])
def test_corrupt_file_is_reported(tmp_path: Path, contents: bytes) -> None:
    path = tmp_path / "mnist.npz"
    path.write_bytes(contents)
    with pytest.raises(data.DataError, match=r"mnist\.npz: not a readable \.npz file"):
        data.load_mnist(path)


def test_truncated_real_file_is_reported(tmp_path: Path, mnist_path: Path) -> None:
    path = tmp_path / "mnist.npz"
    path.write_bytes(mnist_path.read_bytes()[: 1 << 20])
    with pytest.raises(data.DataError, match=r"not a readable \.npz file"):
        data.load_mnist(path)


def test_missing_array_is_named(tmp_path: Path) -> None:
    arrays = _arrays()
    del arrays["y_test"]
    with pytest.raises(data.DataError, match=r"missing arrays \['y_test'\]"):
        data.load_mnist(_write(tmp_path / "m.npz", arrays), check="structure")


@pytest.mark.parametrize(("name", "bad", "message"), [
    ("x_train", np.zeros((40, 28, 28), dtype=np.float32), "x_train has dtype float32"),
    ("x_test", np.zeros((20, 28, 27), dtype=np.uint8), r"x_test has shape \(20, 28, 27\)"),
    ("y_train", np.zeros((40, 1), dtype=np.uint8), r"y_train has shape \(40, 1\)"),
    ("y_train", np.full(40, 10, dtype=np.uint8), "y_train holds label 10"),
    ("y_test", np.zeros(19, dtype=np.uint8), "20 images but y_test has 19 labels"),
])
def test_layout_errors_are_named(tmp_path: Path, name: str, bad: np.ndarray,
                                 message: str) -> None:
    arrays = _arrays()
    arrays[name] = bad
    path = _write(tmp_path / "m.npz", arrays)
    with pytest.raises(data.DataError, match=message) as error:
        data.load_mnist(path, check="structure")
    assert str(path) in str(error.value)


def test_other_data_fails_canonical_check_but_passes_structure_check(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _write(tmp_path / "m.npz", _arrays())
    with pytest.raises(data.DataError, match=r"not the canonical MNIST: x_train has shape"):
        data.load_mnist(path)
    with caplog.at_level(logging.WARNING):
        mnist = data.load_mnist(path, check="structure")
    assert "not the canonical MNIST" in caplog.text
    assert len(mnist.train) == 40 and len(mnist.test) == 20


def test_altered_pixel_fails_the_sha256_check(mnist_path: Path) -> None:
    mnist = data.load_mnist(mnist_path)
    arrays = {"x_train": mnist.train.images.copy(), "y_train": mnist.train.labels,
              "x_test": mnist.test.images, "y_test": mnist.test.labels}
    arrays["x_train"][123, 14, 14] ^= 1
    with pytest.raises(data.DataError, match=r"x_train sha256 is .* canonical 741c988805d0"):
        data.verify(arrays, "altered.npz")


def test_download_failure_says_how_to_use_a_local_file(monkeypatch: pytest.MonkeyPatch) -> None:
    import keras

    def offline() -> None:
        raise OSError("no route to host")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    with pytest.raises(data.DataError, match=r"cannot download MNIST.*pass --data"):
        data.load_mnist(None)


def test_validation_split_is_stratified_seeded_and_disjoint() -> None:
    # Each image carries its row number in two pixels, so rows are distinguishable.
    images = np.zeros((1200, 28, 28), dtype=np.uint8)
    images[:, 0, 0], images[:, 0, 1] = np.arange(1200) % 256, np.arange(1200) // 256
    labels = np.repeat(np.arange(10, dtype=np.uint8), 120)
    split = data.Split(images, labels)
    train, validation = data.split_validation(split, 0.25, seed=3)
    again_train, again_validation = data.split_validation(split, 0.25, seed=3)
    _, other_validation = data.split_validation(split, 0.25, seed=4)
    assert len(train) + len(validation) == 1200
    assert np.bincount(validation.labels).tolist() == [30] * 10
    assert np.array_equal(validation.images, again_validation.images)
    assert np.array_equal(train.labels, again_train.labels)
    assert not np.array_equal(validation.images, other_validation.images)
    held_out = {bytes(image) for image in validation.images}
    assert not any(bytes(image) in held_out for image in train.images)


def test_too_small_split_asks_for_more_data() -> None:
    split = data.Split(np.zeros((1, 28, 28), np.uint8), np.zeros(1, np.uint8))
    with pytest.raises(ValueError, match="too few"):
        data.split_validation(split, 0.1, seed=0)


def test_keep_digits_renumbers_labels() -> None:
    labels = np.array([3, 7, 1, 7, 3, 0], dtype=np.uint8)
    images = np.stack([np.full((28, 28), label, np.uint8) for label in labels])
    kept = data.keep_digits(data.Split(images, labels), (3, 7))
    assert kept.labels.tolist() == [0, 1, 1, 0]
    assert kept.images[:, 0, 0].tolist() == [3, 7, 7, 3]


def test_fingerprint_records_sources_and_counts(tmp_path: Path) -> None:
    mnist = data.load_mnist(_write(tmp_path / "m.npz", _arrays()), check="structure")
    record = data.fingerprint(mnist, train=30, validation=10, test=20, digits=(0, 1))
    assert record.source == str(tmp_path / "m.npz")
    assert dict(record.array_sha256) == mnist.array_sha256
    assert (record.train_examples, record.validation_examples, record.test_examples) == (
        30, 10, 20)
    assert list(record.digits) == [0, 1]
