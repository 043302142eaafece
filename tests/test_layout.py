"""The layout keeps telling the architecture: small modules and functions, no import
cycles, the service and the jobs apart, and text that speaks of the project itself."""

import ast
import re
import statistics
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "digits"
MAX_MEDIAN_MODULE_LINES = 120
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 60


def modules() -> dict[str, Path]:
    """Hand-written modules by dotted name (the generated protobuf code is not ours)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if "_pb2" in path.name:
            continue
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported(path: Path, name: str) -> Iterator[str]:
    """Every module ``path`` imports, at any depth of its code."""
    known = modules()
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            # ``from package import module`` depends on the module (Python runs the
            # package's __init__ first for any submodule, which is no cycle of ours).
            for alias in node.names:
                yield f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: {target for target in imported(path, name) if target in known
                   and target != name}
            for name, path in known.items()}


def test_modules_are_small() -> None:
    lengths = {name: len(path.read_text().splitlines()) for name, path in modules().items()}
    assert statistics.median(lengths.values()) <= MAX_MEDIAN_MODULE_LINES
    too_long = {name: lines for name, lines in lengths.items() if lines > MAX_MODULE_LINES}
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines: {too_long}"


def test_functions_are_short() -> None:
    """Counted from ``def`` to the last line; decorators (click's option declarations)
    are declarations, not the function's code."""
    too_long = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    too_long.append(f"{name}.{node.name} ({lines} lines)")
    assert not too_long, f"functions over {MAX_FUNCTION_LINES} lines: {too_long}"


def test_no_import_cycles() -> None:
    graph = import_graph()
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for target in sorted(graph[name]):
            if state.get(target) == "open":
                cycle = [*path[path.index(target):], target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, [*path, target])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_the_service_and_the_jobs_never_import_each_other() -> None:
    for name, targets in import_graph().items():
        for side, other in (("digits.service", "digits.jobs"), ("digits.jobs", "digits.service")):
            if name.startswith(side):
                assert not [t for t in targets if t.startswith(other)], (name, targets)


def test_the_api_facts_module_imports_only_generated_code() -> None:
    path = modules()["digits.api"]
    assert set(imported(path, "digits.api")) <= {
        "digits.v1", "digits.v1.classifier_pb2", "digits.oip", "digits.oip.open_inference_pb2"}


# References a newcomer cannot follow: tracker numbers, files that do not exist.
UNFOLLOWABLE = re.compile(r"\bissue\s*#?\d+|\bissue \d+'s\b|\binterfaces\.md\b|"
                          r"\bagreed interfaces\b", re.IGNORECASE)


def test_code_tests_scripts_and_docs_speak_of_the_project_itself() -> None:
    places = [ROOT / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("scripts/*"),
              *ROOT.glob("deploy/**/*"), *(ROOT / "src").rglob("*.py"),
              *(ROOT / "tests").rglob("*.py")]
    found = []
    for path in places:
        if path.is_file() and path != Path(__file__):
            for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                if UNFOLLOWABLE.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "\n".join(found)
