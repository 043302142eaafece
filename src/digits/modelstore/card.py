"""Reading, writing and checking model cards (``model_card.json``)."""

import hashlib
import os
from pathlib import Path

from google.protobuf import json_format

from digits.v1.model_card_pb2 import ModelCard

CARD_FILENAME = "model_card.json"
_CHUNK = 1 << 20


class InvalidCard(ValueError):
    """A version directory whose card is missing, unreadable or does not match its files."""


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's contents, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_digests(version_dir: Path) -> dict[str, str]:
    """sha256 of every file under ``version_dir`` except the card, keyed by relative path."""
    return {
        path.relative_to(version_dir).as_posix(): sha256_file(path)
        for path in sorted(version_dir.rglob("*"))
        if path.is_file() and path.relative_to(version_dir).as_posix() != CARD_FILENAME
    }


def write_card(version_dir: Path, card: ModelCard) -> Path:
    """Write ``card`` as JSON into ``version_dir`` (fsynced, since it marks completeness)."""
    path = version_dir / CARD_FILENAME
    text = json_format.MessageToJson(card, indent=2, preserving_proto_field_name=True)
    with path.open("w", encoding="utf-8") as f:
        f.write(text + "\n")
        f.flush()
        os.fsync(f.fileno())
    return path


def read_card(version_dir: Path) -> ModelCard:
    """Parse the card in ``version_dir``; raise ``InvalidCard`` naming the problem."""
    path = version_dir / CARD_FILENAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidCard(f"{path}: no model card; the version is incomplete") from None
    except OSError as error:
        raise InvalidCard(f"{path}: cannot read the model card: {error}") from error
    try:
        return json_format.Parse(text, ModelCard())
    except json_format.ParseError as error:
        raise InvalidCard(f"{path}: not a valid model card: {error}") from error


def verify_files(version_dir: Path, card: ModelCard) -> None:
    """Raise ``InvalidCard`` unless the files on disk are exactly those the card lists."""
    actual = file_digests(version_dir)
    expected = dict(card.file_sha256)
    if not expected:
        raise InvalidCard(f"{version_dir}: the model card lists no files")
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    changed = sorted(name for name in expected.keys() & actual.keys()
                     if expected[name] != actual[name])
    problems = []
    if missing:
        problems.append(f"missing {missing}")
    if extra:
        problems.append(f"not in the card {extra}")
    if changed:
        problems.append(f"sha256 mismatch {changed}")
    if problems:
        raise InvalidCard(f"{version_dir}: files do not match the model card: "
                          + "; ".join(problems))
