"""Prints the project's runtime requirements (plus named extras) from pyproject.toml.

The image builds install these, pinned by ``-c requirements.lock``, in a layer of their
own before the source is copied, so editing the code does not reinstall TensorFlow.
Standard library only: it runs in the bare base image.

Usage: python pyproject_requirements.py PYPROJECT [EXTRA ...] > requirements.txt
"""

import re
import sys
import tomllib
from pathlib import Path

# "digits[jobs]" inside an extra names the project's own extras (pip would fetch it).
_SELF_REFERENCE = re.compile(r"^(?P<name>[A-Za-z0-9._-]+)\[(?P<extras>[^\]]+)\]$")


def requirements(pyproject: Path, extras: list[str]) -> list[str]:
    """The dependencies and those of each extra, the project's own extras expanded."""
    project = tomllib.loads(pyproject.read_text())["project"]
    optional = project.get("optional-dependencies", {})
    lines: list[str] = list(project["dependencies"])
    pending = list(extras)
    seen: set[str] = set()
    while pending:
        extra = pending.pop()
        if extra in seen:
            continue
        if extra not in optional:
            raise ValueError(f"{pyproject}: no extra {extra!r}; it has {sorted(optional)}")
        seen.add(extra)
        for requirement in optional[extra]:
            match = _SELF_REFERENCE.match(requirement.strip())
            if match and match["name"] == project["name"]:
                pending.extend(part.strip() for part in match["extras"].split(","))
            else:
                lines.append(requirement)
    return lines


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    try:
        print("\n".join(requirements(Path(sys.argv[1]), sys.argv[2:])))
    except ValueError as error:
        sys.exit(str(error))
