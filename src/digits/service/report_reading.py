"""Reading a loaded version's report files, each checked against its card's sha256."""

import hashlib
from dataclasses import dataclass
from pathlib import Path

from digits.modelstore.report_files import (
    CONTENT_TYPES,
    is_report_file,
    report_files,
    report_path,
)
from digits.service.errors import ModelNotFound, ModelUnavailable, echo
from digits.v1.model_card_pb2 import ModelCard


@dataclass(frozen=True)
class ReportFile:
    """One report file's contents, media type and sha256 (the card's)."""

    data: bytes
    content_type: str
    sha256: str


def read_report_file(version_dir: Path, card: ModelCard, filename: str,
                     version: str) -> ReportFile:
    """Report file ``filename`` of the version in ``version_dir`` (``version`` names it
    in errors, e.g. "version 3 of 'mnist'").

    Raises ModelNotFound unless the card lists it as a report file, and ModelUnavailable
    when it is gone or changed since export (a version's files never change).
    """
    relative = report_path(filename)
    expected = card.file_sha256.get(relative)
    if expected is None or not is_report_file(relative):
        listed = ", ".join(path.split("/", 1)[1] for path in report_files(card))
        raise ModelNotFound(f"file: {version} carries no report "
                            f"file {echo(filename)}; its report files: {listed or 'none'}")
    try:
        data = (version_dir / relative).read_bytes()
    except OSError as error:
        raise ModelUnavailable(f"file: {relative} of {version} "
                               f"cannot be read ({error.strerror or error}); check the model "
                               "volume") from None
    if hashlib.sha256(data).hexdigest() != expected:
        raise ModelUnavailable(f"file: {relative} of {version} "
                               "changed since export (its sha256 no longer matches the card); "
                               "export the version again")
    return ReportFile(data, CONTENT_TYPES[Path(relative).suffix], expected)
