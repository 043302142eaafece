"""The KServe comparison's files agree, without building KServe's environment (about 600 MB;
scripts/bench-kserve builds it and runs the comparison)."""

import ast
import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KSERVE = ROOT / "bench" / "kserve"
SCRIPT = ROOT / "scripts" / "bench-kserve"


def test_the_model_server_parses_and_imports_nothing_from_digits() -> None:
    tree = ast.parse((KSERVE / "model_server.py").read_text())
    compile(tree, "model_server.py", "exec")
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom)}
    assert {"kserve", "tensorflow"} <= imported
    assert not [name for name in imported if name.split(".")[0] == "digits"]
    classes = {node.name: node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}
    methods = {item.name for item in classes["DigitsModel"].body
               if isinstance(item, ast.FunctionDef)}
    assert {"load", "predict"} <= methods


def test_the_kserve_environment_is_pinned() -> None:
    lines = [line for line in (KSERVE / "requirements.txt").read_text().splitlines()
             if line and not line.startswith("#")]
    pins = dict(line.split("==") for line in lines)
    assert len(pins) == len(lines), "every requirement pinned with =="
    normalised = {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in pins.items()}
    assert normalised["kserve"] == "0.21.0" and normalised["tensorflow-cpu"] == "2.21.0"
    assert int(normalised["protobuf"].split(".")[0]) < 7


def test_the_script_is_executable_and_names_files_that_exist() -> None:
    assert os.access(SCRIPT, os.X_OK)
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    named = set(re.findall(r"\$root/((?:bench|scripts)/[\w./-]+)", SCRIPT.read_text()))
    assert {"bench/kserve/model_server.py", "bench/kserve/requirements.txt"} <= named
    assert all((ROOT / path).is_file() for path in named), named
