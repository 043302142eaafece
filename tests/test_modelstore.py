"""The model volume contract: names, cards, atomic publishing, loading checks."""

import json
from pathlib import Path

import pytest

from digits.modelstore import volume
from digits.modelstore.card import CARD_FILENAME, InvalidCard, read_card, verify_files
from digits.modelstore.names import InvalidModelName, validate_model_name
from digits.v1.model_card_pb2 import ModelCard


@pytest.mark.parametrize("name", ["a", "mnist", "mnist-cnn_2", "0", "a" * 63])
def test_valid_names(name: str) -> None:
    assert validate_model_name(name) == name


@pytest.mark.parametrize("name", ["", "A", "-a", "_a", "a/b", "..", "a b", "a" * 64, "é"])
def test_invalid_names_are_rejected_with_the_rule(name: str) -> None:
    with pytest.raises(InvalidModelName, match="lowercase letters"):
        validate_model_name(name)


def _publish(root: Path, name: str = "m", payload: bytes = b"weights") -> Path:
    with volume.staging_dir(root, name) as staging:
        (staging / "variables").mkdir()
        (staging / "variables" / "data").write_bytes(payload)
        return volume.publish(staging, root, name, ModelCard(labels=["0", "1"]))


def test_publish_numbers_versions_and_writes_a_matching_card(models_root: Path) -> None:
    first = _publish(models_root)
    second = _publish(models_root, payload=b"other")
    assert (first.name, second.name) == ("1", "2")
    card = read_card(second)
    assert card.version == 2 and card.name == "m"
    assert set(card.file_sha256) == {"variables/data"}
    verify_files(second, card)
    assert volume.list_versions(models_root, "m") == [1, 2]
    assert [p.name for p in (models_root / "m").iterdir() if p.name.startswith(".")] == []


def test_failed_export_leaves_nothing(models_root: Path) -> None:
    with pytest.raises(RuntimeError), volume.staging_dir(models_root, "m") as staging:
        (staging / "half").write_bytes(b"x")
        raise RuntimeError("killed mid-export")
    assert list((models_root / "m").iterdir()) == []


def test_tampered_file_fails_verification(models_root: Path) -> None:
    version = _publish(models_root)
    (version / "variables" / "data").write_bytes(b"tampered")
    with pytest.raises(InvalidCard, match="sha256 mismatch"):
        verify_files(version, read_card(version))


def test_extra_and_missing_files_fail_verification(models_root: Path) -> None:
    version = _publish(models_root)
    (version / "extra").write_bytes(b"x")
    with pytest.raises(InvalidCard, match="not in the card"):
        verify_files(version, read_card(version))
    (version / "extra").unlink()
    (version / "variables" / "data").unlink()
    with pytest.raises(InvalidCard, match="missing"):
        verify_files(version, read_card(version))


def test_missing_or_garbled_card_is_reported(models_root: Path) -> None:
    version = _publish(models_root)
    (version / CARD_FILENAME).write_text("{not json")
    with pytest.raises(InvalidCard, match="not a valid model card"):
        read_card(version)
    (version / CARD_FILENAME).unlink()
    with pytest.raises(InvalidCard, match="no model card"):
        read_card(version)


def test_card_is_plain_json_with_proto_field_names(models_root: Path) -> None:
    version = _publish(models_root)
    data = json.loads((version / CARD_FILENAME).read_text())
    assert data["labels"] == ["0", "1"] and "file_sha256" in data


def test_only_positive_integer_directories_are_versions(models_root: Path) -> None:
    for entry in ["1", "7", "0", "-2", "01", "x", ".staging-h-1-x", "3.5"]:
        (models_root / "m" / entry).mkdir(parents=True)
    (models_root / "m" / "9").write_text("a file, not a directory")
    assert volume.list_versions(models_root, "m") == [1, 7]


def test_unwritable_models_directory_names_the_fix(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(volume.ModelVolumeError, match="--models"), \
            volume.staging_dir(blocker, "m"):
        pass


def test_publish_skips_a_version_taken_meanwhile(models_root: Path) -> None:
    with volume.staging_dir(models_root, "m") as staging:
        (staging / "f").write_bytes(b"x")
        # Another job publishes version 1 while this one is still writing.
        _publish(models_root)
        final = volume.publish(staging, models_root, "m", ModelCard(labels=["0"]))
    assert final.name == "2" and read_card(final).version == 2
