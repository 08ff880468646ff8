"""The architecture's rules hold, and each check can fail: the import contracts
(`.importlinter`), no import cycle, who may import the shared test helpers, and no module over
300 lines."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

from ml.testing.processes import REPO

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
PACKAGES = ("ml", "service", "tests", "bench")
MAX_MODULE_LINES = 300


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(cwd)},
    )


def copy_with_line(tmp_path: Path, module: str, line: str) -> Path:
    """A copy of the packages with `line` appended to `module`."""
    copy = tmp_path / "repo"
    for part in (*PACKAGES, ".importlinter"):
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, copy / part)
    with open(copy / module, "a") as handle:
        handle.write(f"\n{line}  # noqa\n")
    return copy


def test_the_import_contracts_are_kept() -> None:
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        ("service/api/routes.py", "import ml.promote", "The service reaches ml only through"),
        (
            "ml/runtime/kinds/tree_ensemble.py",
            "import ml.data",
            "The serving runtime imports no",
        ),
        ("ml/runtime/schema.py", "import pandas", "The serving runtime imports no"),
        ("ml/workflow.py", "import service.app", "Nothing under ml imports service"),
        ("bench/run.py", "import tests.conftest", "bench imports nothing of the tests"),
        ("service/model/dataplane.py", "import service.api.schemas", "The service's wings"),
        ("service/observe/metrics.py", "import service.model.registry", "The service's wings"),
        ("service/errors.py", "import fastapi", "The vocabulary, settings and client"),
        ("service/client.py", "import service.api.routes", "The vocabulary, settings and client"),
    ],
)
def test_each_contract_catches_a_forbidden_import(
    tmp_path: Path, module: str, line: str, broken: str
) -> None:
    result = lint_imports(copy_with_line(tmp_path, module, line))
    assert result.returncode != 0
    (verdict,) = [line for line in result.stdout.splitlines() if line.startswith(broken)][:1]
    assert verdict.endswith("BROKEN") or "BROKEN (" in verdict


def import_graph(root: Path, monkeypatch: pytest.MonkeyPatch) -> grimp.ImportGraph:
    """The import graph of the packages under `root`, read from their files."""
    for name in [m for m in sys.modules if m.split(".")[0] in PACKAGES]:
        monkeypatch.delitem(sys.modules, name)  # else grimp finds the ones imported here
    monkeypatch.syspath_prepend(str(root))
    return grimp.build_graph(*PACKAGES, cache_dir=None)


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Groups of modules that import each other, directly or not (Tarjan's strongly connected
    components over the import graph)."""
    modules = sorted(graph.modules)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m) & set(modules)) for m in modules}
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        order[module] = low[module] = len(order)
        stack.append(module)
        for imported in edges[module]:
            if imported not in order:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], order[imported])
        if low[module] == order[module]:
            group = [stack.pop()]
            while group[-1] != module:
                group.append(stack.pop())
            if len(group) > 1:
                cycles.append(sorted(group))

    for module in modules:
        if module not in order:
            visit(module)
    return cycles


def test_no_module_imports_itself_through_others(monkeypatch: pytest.MonkeyPatch) -> None:
    assert import_cycles(import_graph(REPO, monkeypatch)) == []


def test_a_cycle_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The cycle this tree once had: the store imported its own backends.
    copy = copy_with_line(tmp_path, "ml/runtime/store.py", "import ml.runtime.local_store")
    cycles = import_cycles(import_graph(copy, monkeypatch))
    assert any({"ml.runtime.local_store", "ml.runtime.store"} <= set(c) for c in cycles)


def importers_of_test_helpers(graph: grimp.ImportGraph) -> set[str]:
    helpers = {m for m in graph.modules if m == "ml.testing" or m.startswith("ml.testing.")}
    importers = set().union(*(graph.find_modules_that_directly_import(m) for m in helpers))
    return {m for m in importers - helpers if m.split(".")[0] not in ("tests", "bench")}


def test_only_tests_and_benchmarks_import_the_shared_helpers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert importers_of_test_helpers(import_graph(REPO, monkeypatch)) == set()


def test_another_importer_of_the_shared_helpers_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = copy_with_line(tmp_path, "ml/promote.py", "import ml.testing.keys")
    assert importers_of_test_helpers(import_graph(copy, monkeypatch)) == {"ml.promote"}


def long_modules(root: Path) -> dict[str, int]:
    found = {}
    for package in ("ml", "service", "bench", "tests", "examples", "infra"):
        for path in (root / package).rglob("*.py"):
            lines = len(path.read_text().splitlines())
            if lines > MAX_MODULE_LINES:
                found[str(path.relative_to(root))] = lines
    return found


def test_no_module_is_over_300_lines(tmp_path: Path) -> None:
    assert long_modules(REPO) == {}
    (tmp_path / "ml").mkdir()
    (tmp_path / "ml" / "long.py").write_text("pass\n" * (MAX_MODULE_LINES + 1))
    assert long_modules(tmp_path) == {"ml/long.py": MAX_MODULE_LINES + 1}
