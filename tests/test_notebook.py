"""notebooks/walkthrough.ipynb: committed without outputs, executed top to bottom from a
clean kernel with this interpreter, and what it printed checked against real bounds."""

import json
import re
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbformat.v4 import new_code_cell

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "walkthrough.ipynb"
SECTIONS = ("## 1.", "## 2.", "## 3.", "## 4.", "## 5.")
# The whole notebook takes about 70 s on an idle 2-core machine, its slowest cell (the
# regularisation study) about 30 s; the bounds leave room for a busy machine.
CELL_SECONDS = 300
NOTEBOOK_SECONDS = 600


@pytest.fixture
def venv_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The ``python3`` kernel, pinned to this interpreter (the .venv's under scripts/test):
    JUPYTER_PATH comes before any user's or system's kernel of that name. Its temporary
    files go to ``tmp_path``, so a failed run leaves its workspace (and server log) there.
    """
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (digits)", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return "python3"


def _execute(notebook: nbformat.NotebookNode, kernel: str, cwd: Path) -> None:
    """Run every cell in a fresh kernel started in ``cwd``; raise on the first error."""
    NotebookClient(notebook, kernel_name=kernel, timeout=CELL_SECONDS, startup_timeout=120,
                   resources={"metadata": {"path": str(cwd)}}).execute()


def _outputs(notebook: nbformat.NotebookNode) -> tuple[str, list[str]]:
    """Everything the cells printed or displayed as text, and the kinds of data shown."""
    text, kinds = [], []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output["output_type"] == "stream":
                text.append(output["text"])
            for kind, value in output.get("data", {}).items():
                kinds.append(kind)
                if kind in ("text/plain", "text/markdown"):
                    text.append(value)
    return "\n".join(text), kinds


def _figure(pattern: str, text: str) -> Any:
    match = re.search(pattern, text)
    assert match, f"the notebook did not print {pattern!r}:\n{text}"
    return match


def test_the_committed_notebook_has_no_outputs_and_explains_every_section() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata.kernelspec.name == "python3"
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    for cell in code:
        # Outputs and counts make every run a diff; clear them before committing.
        assert cell.outputs == [] and cell.execution_count is None, cell.source[:80]
        assert "execution" not in cell.metadata, cell.source[:80]
    # The first code cell names the small settings, and nothing else.
    assert re.search(r"^SEED = \d+$", code[0].source, re.MULTILINE)
    assert "import" not in code[0].source
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert notebook.cells[index - 1].cell_type == "markdown", (
                f"code cell {index} needs a markdown cell before it saying what it shows")
    markdown = [cell.source for cell in notebook.cells if cell.cell_type == "markdown"]
    for heading in SECTIONS:
        opening = [text for text in markdown if text.startswith(heading)]
        assert len(opening) == 1, f"one section starting {heading!r}"
        # Says in sentences what the reader sees, and where that code lives.
        assert re.search(r"src/digits/\S+\.py", opening[0]), heading
        assert len(re.findall(r"\w[.:] ", opening[0])) >= 1, heading


@pytest.mark.parametrize("mnist", ["/nonexistent/mnist.npz", None])
def test_without_the_data_the_notebook_stops_at_once_naming_the_fix(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, venv_kernel: str,
        mnist: str | None) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [index for index, cell in enumerate(notebook.cells) if cell.cell_type == "code"]
    notebook.cells = notebook.cells[:code[1] + 1]  # the settings and the setup
    if mnist is None:
        monkeypatch.delenv("DIGITS_MNIST", raising=False)
    else:
        monkeypatch.setenv("DIGITS_MNIST", mnist)
    # Started outside the repository, so there is no ../shared/data to fall back on.
    with pytest.raises(CellExecutionError) as failure:
        _execute(notebook, venv_kernel, tmp_path)
    # The raised error itself (the cell's source, also in the message, says the same).
    assert failure.value.ename == "FileNotFoundError"
    assert "set DIGITS_MNIST to the path of mnist.npz" in failure.value.evalue
    assert mnist is None or f"DIGITS_MNIST={mnist} is not a file" in failure.value.evalue


def test_a_cell_failing_after_the_server_started_still_stops_it(
        tmp_path: Path, mnist_path: Path, venv_kernel: str) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    serve = next(cell for cell in code if "subprocess.Popen" in cell.source)
    notebook.cells = [code[0], code[1], new_code_cell("MODELS.mkdir()\npublished = 0"), serve,
                      new_code_cell("raise RuntimeError('a later cell fails')")]
    with pytest.raises(CellExecutionError, match="a later cell fails"):
        _execute(notebook, venv_kernel, NOTEBOOK.parent)
    # The kernel's shutdown stopped the server the way SIGTERM does: drained, then exited.
    log = next(tmp_path.glob("digits-notebook-*/serve.log")).read_text()
    assert "shutting down: NOT_SERVING" in log
    assert log.rstrip().endswith("stopped"), log


@pytest.mark.e2e
@pytest.mark.timeout(NOTEBOOK_SECONDS)
def test_the_notebook_runs_top_to_bottom_and_shows_real_results(
        mnist_path: Path, venv_kernel: str) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    _execute(notebook, venv_kernel, NOTEBOOK.parent)
    text, kinds = _outputs(notebook)

    assert f"python: {sys.executable}\n" in text
    assert kinds.count("image/png") >= 12  # digits, live curve, reports, served answers
    assert float(_figure(r"largest relative error (\S+) over", text)[1]) < 1e-6
    assert float(_figure(r"NumPy network: test accuracy ([\d.]+)%", text)[1]) >= 99.0
    assert float(_figure(r"exported twin: largest difference from the NumPy network (\S+)",
                         text)[1]) < 1e-5
    assert float(_figure(r"dense network: test accuracy ([\d.]+)%", text)[1]) >= 85.0
    assert float(_figure(r"CNN: test accuracy ([\d.]+)%", text)[1]) >= 85.0
    for variant in ("baseline", "l2", "dropout", "batchnorm", "all"):
        assert f"| {variant} |" in text
    assert "Ranked by mean validation accuracy" in text

    for version in (1, 2):  # each version passed the quality gate on its golden set
        assert float(_figure(rf"mnist v{version} gate: passed: golden accuracy ([\d.]+)",
                             text)[1]) >= 0.85
    for version in (1, 2):  # the dense network, then the CNN, through digits serve
        served = _figure(rf"served mnist v{version}: (\d+) of (\d+) test images right", text)
        assert int(served[1]) >= 0.85 * int(served[2])
    assert "drawn 7 read as 7 " in text  # the CNN is sure of it (confidence 1.00)
    # The metrics count exactly the three Classify calls sent: two batches and the PNG.
    metrics = _figure(r"metrics read back: (\d+) Classify requests OK, (\d+) images "
                      r"classified by mnist", text)
    assert int(metrics[1]) == 3 and int(metrics[2]) == 2 * int(served[2]) + 1
    assert "digits serve exited with code 0" in text
