"""The training report a version carries: its plots and tables, under ``report/``.

Jobs copy their run's report files into the exported version, so a version holds its own
evidence wherever it is copied; the card lists them with their sha256 like every other
file, and the service serves exactly those.
"""

from pathlib import PurePosixPath

from digits.v1.model_card_pb2 import ModelCard

REPORT_DIRECTORY = "report"
# What a report may hold, and how each kind is served (never as HTML: nothing in a
# version is rendered by a browser as a page).
CONTENT_TYPES = {
    ".png": "image/png",
    ".md": "text/markdown; charset=utf-8",
}


def report_path(filename: str) -> str:
    """The card's key (relative path in the version) of report file ``filename``."""
    return f"{REPORT_DIRECTORY}/{filename}"


def is_report_file(relative_path: str) -> bool:
    """Whether ``relative_path`` names a servable report file: directly in ``report/``,
    of a known kind, with no way out of the version directory."""
    path = PurePosixPath(relative_path)
    return (len(path.parts) == 2 and path.parts[0] == REPORT_DIRECTORY
            and path.suffix in CONTENT_TYPES and not path.name.startswith("."))


def report_files(card: ModelCard) -> list[str]:
    """The report files ``card`` lists (relative paths), sorted."""
    return sorted(path for path in card.file_sha256 if is_report_file(path))
