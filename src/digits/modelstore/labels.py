"""Version labels on the model volume: ``<models>/<name>/labels.json``.

A label (``stable``, ``canary``, any valid name) points at a version of one model, with
TensorFlow Serving's meaning. ``digits promote`` changes the file; every replica reads it
on its next scan and moves a label only onto a version it has loaded and the quality
gate passed. Changes are read-modify-write under a lock file, and the new file replaces
the old with a rename, so readers see the old assignment or the new one, never half.
"""

import contextlib
import fcntl
import os
import re
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from google.protobuf import json_format

from digits.modelstore.card import CARD_FILENAME
from digits.modelstore.volume import model_dir
from digits.v1.version_labels_pb2 import LabelChange, VersionLabels

LABELS_FILENAME = "labels.json"
STABLE, CANARY = "stable", "canary"  # what unpinned requests get; the weighted share's
_LOCK_FILENAME = ".labels.lock"
LABEL_PATTERN = re.compile(r"[a-z][a-z0-9_-]{0,62}")
# Changes kept for --rollback and for the record; older ones are dropped.
MAX_HISTORY = 100
# Larger than any file MAX_HISTORY changes make; a bigger one is not ours.
MAX_FILE_BYTES = 1 << 20


class InvalidLabels(ValueError):
    """A labels file or change that cannot be used; the message names the fix."""


def validate_label(label: str) -> str:
    """Return ``label`` if it is 1 to 63 lowercase letters, digits, '-' or '_', starting
    with a letter (so it can never be mistaken for a version number), else raise."""
    if not isinstance(label, str) or not LABEL_PATTERN.fullmatch(label):
        shown = repr(label[:64]) if isinstance(label, str) else repr(label)
        raise InvalidLabels(f"invalid version label {shown}: use 1 to 63 lowercase letters, "
                            "digits, '-' and '_', starting with a letter (e.g. 'stable')")
    return label


def labels_path(root: Path, name: str) -> Path:
    return model_dir(root, name) / LABELS_FILENAME


def read_labels(root: Path, name: str) -> VersionLabels:
    """The labels of model ``name`` (none when it has no file); raise ``InvalidLabels``
    naming the problem for a file that cannot be used."""
    path = labels_path(root, name)
    try:
        with path.open("rb") as f:
            text = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return VersionLabels()
    except OSError as error:
        raise InvalidLabels(f"{path}: cannot read it: {error}") from error
    if len(text) > MAX_FILE_BYTES:
        raise InvalidLabels(f"{path}: larger than {MAX_FILE_BYTES:,} bytes; not a labels "
                            "file written by digits promote")
    try:
        labels = json_format.Parse(text, VersionLabels())
    except (json_format.ParseError, UnicodeDecodeError) as error:
        raise InvalidLabels(f"{path}: not a valid labels file ({error}); rewrite it with "
                            "digits promote") from error
    for label, version in labels.labels.items():
        validate_label(label)
        if version <= 0:
            raise InvalidLabels(f"{path}: label {label!r} points at version {version}; "
                                "versions are positive")
    if not 0 <= labels.canary_weight <= 1:
        raise InvalidLabels(f"{path}: canary_weight {labels.canary_weight} is not a share "
                            "from 0 to 1")
    return labels


def promote(root: Path, name: str, label: str, version: int) -> VersionLabels:
    """Point ``label`` at ``version`` (which must exist on the volume with a card)."""
    validate_label(label)
    version_dir = model_dir(root, name) / str(version)
    if version <= 0 or not (version_dir / CARD_FILENAME).is_file():
        raise InvalidLabels(f"model {name!r} has no published version {version} under "
                            f"{root}; list them with digits models, or train one")
    with _changing(root, name) as labels:
        _record(labels, label, version, "promote")
        return labels


def rollback(root: Path, name: str, label: str) -> VersionLabels:
    """Point ``label`` back at the version it had before its last promotion."""
    validate_label(label)
    with _changing(root, name) as labels:
        last = next((change for change in reversed(labels.history)
                     if change.label == label and change.action == "promote"), None)
        if last is None or not last.previous_version:
            raise InvalidLabels(f"label {label!r} of model {name!r} has no earlier version "
                                "to roll back to; promote one instead")
        _record(labels, label, last.previous_version, "rollback")
        # The rolled-back promotion is spent: a second rollback goes one further back.
        last.action = "promote-undone"
        return labels


def remove(root: Path, name: str, label: str) -> VersionLabels:
    """Drop ``label`` (requests naming it are refused from then on)."""
    validate_label(label)
    with _changing(root, name) as labels:
        if label not in labels.labels:
            raise InvalidLabels(f"model {name!r} has no label {label!r}")
        _record(labels, label, 0, "remove")
        return labels


def set_canary_weight(root: Path, name: str, weight: float) -> VersionLabels:
    """Send ``weight`` (0 to 1) of the requests that pin nothing to the ``canary``
    label's version."""
    if not 0 <= weight <= 1:
        raise InvalidLabels(f"canary weight {weight}: give a share from 0 to 1 (0.1 sends "
                            "a tenth of the unpinned requests to the canary)")
    with _changing(root, name) as labels:
        labels.canary_weight = weight
        change = LabelChange(label=CANARY, action="weight", canary_weight=weight,
                             version=labels.labels.get(CANARY, 0))
        change.changed.FromDatetime(datetime.now(UTC))
        labels.history.append(change)
        del labels.history[:-MAX_HISTORY]
        return labels


def _record(labels: VersionLabels, label: str, version: int, action: str) -> None:
    previous = labels.labels.get(label, 0)
    if version:
        labels.labels[label] = version
    else:
        del labels.labels[label]
    change = LabelChange(label=label, version=version, previous_version=previous,
                         action=action)
    change.changed.FromDatetime(datetime.now(UTC))
    labels.history.append(change)
    del labels.history[:-MAX_HISTORY]


@contextlib.contextmanager
def _changing(root: Path, name: str) -> Iterator[VersionLabels]:
    """The current labels, to change in the block; written atomically after it, under a
    lock that serialises concurrent promotions."""
    directory = model_dir(root, name)
    if not directory.is_dir():
        raise InvalidLabels(f"no model {name!r} under {root}")
    with (directory / _LOCK_FILENAME).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        labels = read_labels(root, name)
        yield labels
        _write(directory, labels)


def _write(directory: Path, labels: VersionLabels) -> None:
    text = json_format.MessageToJson(labels, indent=2, preserving_proto_field_name=True)
    handle, temporary = tempfile.mkstemp(prefix=".labels-", dir=directory)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as f:
            f.write(text + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temporary, 0o644)
        os.rename(temporary, directory / LABELS_FILENAME)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
