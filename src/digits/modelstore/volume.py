"""Listing and atomically publishing model versions on the model volume.

A job writes a version into a hidden staging directory beside its final place (same
filesystem), writes the card last, and renames the directory into place. A reader
therefore sees either no version or a complete one, whenever the job is killed.
"""

import contextlib
import errno
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

from digits.modelstore.card import file_digests, write_card
from digits.modelstore.names import MODEL_NAME_PATTERN, validate_model_name
from digits.v1.model_card_pb2 import ModelCard

STAGING_PREFIX = ".staging-"
_PUBLISH_ATTEMPTS = 100


class ModelVolumeError(OSError):
    """The models directory cannot be used (missing permissions, not a directory, ...)."""


def model_dir(root: Path, name: str) -> Path:
    """Directory holding every version of model ``name``."""
    return Path(root) / validate_model_name(name)


def is_version_name(entry: str) -> bool:
    """True for directory names that denote a version: positive integers, no sign."""
    return entry.isascii() and entry.isdigit() and int(entry) > 0 and entry == str(int(entry))


def list_versions(root: Path, name: str) -> list[int]:
    """Versions present for ``name`` (integer directories), ascending; cards not checked."""
    directory = model_dir(root, name)
    if not directory.is_dir():
        return []
    return sorted(int(e.name) for e in directory.iterdir()
                  if e.is_dir() and is_version_name(e.name))


def list_model_names(root: Path) -> list[str]:
    """Names of the model directories under ``root`` whose names are valid."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(e.name for e in root.iterdir()
                  if e.is_dir() and MODEL_NAME_PATTERN.fullmatch(e.name))


def _owner_tag() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-"


def _sweep_abandoned_staging(directory: Path) -> None:
    """Remove staging directories left by killed jobs of this host (their pid is gone)."""
    host_prefix = f"{STAGING_PREFIX}{socket.gethostname()}-"
    for entry in directory.glob(f"{STAGING_PREFIX}*"):
        if not entry.name.startswith(host_prefix):
            continue
        pid_text = entry.name[len(host_prefix):].split("-", 1)[0]
        if pid_text.isdigit() and not _pid_alive(int(pid_text)):
            shutil.rmtree(entry, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def staging_dir(root: Path, name: str) -> Iterator[Path]:
    """A fresh hidden directory to write a version into; removed if the block fails.

    Publish it with :func:`publish` inside the block.
    """
    directory = model_dir(root, name)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        _sweep_abandoned_staging(directory)
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX + _owner_tag(), dir=directory))
    except OSError as error:
        raise ModelVolumeError(
            error.errno or errno.EIO,
            f"cannot write to the models directory {Path(root)}: {error.strerror or error}; "
            "pass --models (or DIGITS_MODELS) naming a writable directory",
        ) from error
    try:
        yield staging
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def next_version(root: Path, name: str) -> int:
    """One more than the newest version of ``name`` on disk (1 for a new model)."""
    versions = list_versions(root, name)
    return versions[-1] + 1 if versions else 1


def publish(staging: Path, root: Path, name: str, card: ModelCard) -> Path:
    """Complete ``card`` (version, file digests), write it last, rename into place.

    The version is the next free integer at publish time; if another job takes it
    first, the next one is used. Returns the final version directory.
    """
    directory = model_dir(root, name)
    card.name = name
    card.file_sha256.clear()
    card.file_sha256.update(file_digests(staging))
    for _ in range(_PUBLISH_ATTEMPTS):
        version = next_version(root, name)
        card.version = version
        write_card(staging, card)
        _fsync_dir(staging)
        target = directory / str(version)
        try:
            # os.rename fails on an existing non-empty directory: no overwrite race.
            os.rename(staging, target)
        except OSError as error:
            if error.errno in (errno.EEXIST, errno.ENOTEMPTY) or target.exists():
                continue
            raise
        _fsync_dir(directory)
        return target
    raise ModelVolumeError(errno.EEXIST, f"could not find a free version under {directory}")
