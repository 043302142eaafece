"""Virtual environments for third-party clients whose pins clash with the project's lock.

Each is built once under ``.venv-clients/NAME`` from ``tests/clients/NAME-requirements.txt``
(rebuilt when that file changes); the tests run the client programs of ``tests/clients``
with its python and read the JSON they print.
"""

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = ROOT / "tests" / "clients"
INSTALL_SECONDS = 600


def client_python(name: str) -> Path:
    """The python of the ``name`` clients' environment, built or refreshed as needed."""
    requirements = CLIENTS / f"{name}-requirements.txt"
    venv = ROOT / ".venv-clients" / name
    stamp = venv / "requirements.sha256"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    if not stamp.is_file() or stamp.read_text() != digest:
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                        "--disable-pip-version-check", "-r", str(requirements)],
                       check=True, timeout=INSTALL_SECONDS)
        stamp.write_text(digest)
    return venv / "bin" / "python"


def run_client(python: Path, program: str, *arguments: str, timeout: float = 120) -> Any:
    """Run ``tests/clients/PROGRAM`` with ``python``; its printed JSON."""
    completed = subprocess.run([str(python), str(CLIENTS / program), *arguments],
                               capture_output=True, text=True, timeout=timeout)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)
