"""Golden set files: what the jobs write reads back, and every malformed file is refused
with a message naming the problem."""

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from digits.modelstore import golden


def images(count: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (count, 28, 28), dtype=np.uint8)


def npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def test_what_encode_writes_reads_back(tmp_path: Path) -> None:
    path = tmp_path / golden.GOLDEN_FILENAME
    labels = np.arange(20) % 10
    path.write_bytes(golden.encode(images(20), labels))
    read = golden.read(path, classes=10)
    assert np.array_equal(read.images, images(20)) and np.array_equal(read.labels, labels)
    assert read.labels.dtype == np.int64 and len(read) == 20 and read.source == str(path)


@pytest.mark.parametrize(("contents", "problem"), [
    (b"not a zip file", "not a readable .npz"),
    (npz(images=images(3)), "no labels array"),
    (npz(labels=np.zeros(3, np.int64)), "no images array"),
    (npz(images=images(3).astype(np.float32), labels=np.zeros(3, np.int64)),
     r"images are float32 \[3, 28, 28\]; expected uint8"),
    (npz(images=np.zeros((3, 32, 32), np.uint8), labels=np.zeros(3, np.int64)),
     r"expected uint8 \[N, 28, 28\]"),
    (npz(images=np.zeros((0, 28, 28), np.uint8), labels=np.zeros(0, np.int64)),
     "0 images; a golden set holds 1 to"),
    (npz(images=images(3), labels=np.zeros(4, np.int64)), r"expected integer \[3\]"),
    (npz(images=images(3), labels=np.array([0.0, 1.0, 2.0])), "labels are float64"),
    (npz(images=images(3), labels=np.array([0, 10, 1])), "labels range from 0 to 10"),
    (npz(images=images(3), labels=np.array([0, -1, 1])), "labels range from -1 to 1"),
    (npz(images=images(3), labels=np.array([{"a": 1}, 0, 1], dtype=object)),
     "not a readable .npz"),
])
def test_malformed_files_are_refused_naming_the_problem(contents: bytes, problem: str) -> None:
    with pytest.raises(golden.InvalidGoldenSet, match=problem):
        golden.decode(contents, "golden.npz", classes=10)


def test_a_file_larger_than_any_golden_set_is_refused_before_it_is_read(
        tmp_path: Path) -> None:
    path = tmp_path / "golden.npz"
    with path.open("wb") as f:
        f.truncate(golden.MAX_FILE_BYTES + 1)
    with pytest.raises(golden.InvalidGoldenSet, match="keep a smaller sample"):
        golden.read(path, classes=10)


def test_an_array_whose_header_promises_too_much_is_refused_unread() -> None:
    # A few KB compressed, more than MAX_FILE_BYTES once inflated: a zip bomb's shape.
    count = golden.MAX_EXAMPLES + 200
    contents = npz(images=np.zeros((count, 28, 28), np.uint8), labels=np.zeros(count, np.int64))
    assert len(contents) < 100_000
    with pytest.raises(golden.InvalidGoldenSet, match="bytes uncompressed"):
        golden.decode(contents, "golden.npz", classes=10)
    with zipfile.ZipFile(io.BytesIO(contents)) as archive:
        assert archive.getinfo("images.npy").file_size > golden.MAX_FILE_BYTES


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(golden.InvalidGoldenSet, match="cannot read it"):
        golden.read(tmp_path / "absent.npz", classes=10)


def test_a_sample_is_seeded_and_keeps_images_with_their_labels() -> None:
    index = np.arange(5000)
    labels = index % 10
    pictures = np.zeros((5000, 28, 28), np.uint8)
    pictures[:, 0, 0], pictures[:, 0, 1] = index // 256, index % 256  # each knows its index
    chosen, chosen_labels = golden.sample(pictures, labels, count=1000)
    again, _ = golden.sample(pictures, labels, count=1000)
    assert len(chosen) == 1000 and np.array_equal(chosen, again)
    chosen_index = chosen[:, 0, 0].astype(int) * 256 + chosen[:, 0, 1]
    assert not np.array_equal(chosen_index, index[:1000])  # drawn, not the first ones
    assert np.array_equal(labels[chosen_index], chosen_labels)
    assert len(golden.sample(pictures[:30], labels[:30])[0]) == 30
