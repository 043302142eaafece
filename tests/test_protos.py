"""The committed generated code matches protos/ (regenerate with scripts/gen-protos)."""

import filecmp
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    subprocess.run([str(ROOT / "scripts" / "gen-protos"), str(tmp_path)], check=True,
                   capture_output=True, env={**os.environ, "PYTHON": sys.executable})
    fresh = tmp_path / "digits" / "v1"
    committed = ROOT / "src" / "digits" / "v1"
    names = sorted(p.name for p in fresh.iterdir() if p.is_file())
    assert names == sorted(p.name for p in committed.iterdir() if p.is_file()
                           and p.suffix in (".py", ".pyi")), "generated file set differs"
    _, mismatch, errors = filecmp.cmpfiles(fresh, committed, names, shallow=False)
    assert not mismatch and not errors, (
        f"stale generated code {mismatch + errors}: run scripts/gen-protos and commit"
    )
