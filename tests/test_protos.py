"""The committed generated code matches protos/ (regenerate with scripts/gen-protos)."""

import filecmp
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("generated")
    subprocess.run([str(ROOT / "scripts" / "gen-protos"), str(out)], check=True,
                   capture_output=True, env={**os.environ, "PYTHON": sys.executable})
    return out


@pytest.mark.parametrize("package", ["v1", "oip"])
def test_generated_code_is_up_to_date(regenerated: Path, package: str) -> None:
    fresh = regenerated / "digits" / package
    committed = ROOT / "src" / "digits" / package
    names = sorted(p.name for p in fresh.iterdir() if p.is_file())
    assert names == sorted(p.name for p in committed.iterdir() if p.is_file()
                           and p.suffix in (".py", ".pyi")), "generated file set differs"
    _, mismatch, errors = filecmp.cmpfiles(fresh, committed, names, shallow=False)
    assert not mismatch and not errors, (
        f"stale generated code {mismatch + errors}: run scripts/gen-protos and commit"
    )
