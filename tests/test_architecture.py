"""The architecture's import rules (`.importlinter`) hold, and the check can fail."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import REPO

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(cwd)},
    )


def test_the_import_contracts_are_kept() -> None:
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout


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
        ("bench/run.py", "import tests.conftest", "bench imports only tests.support"),
    ],
)
def test_each_contract_catches_a_forbidden_import(
    tmp_path: Path, module: str, line: str, broken: str
) -> None:
    copy = tmp_path / "repo"
    for part in ("ml", "service", "tests", "bench", ".importlinter"):
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, copy / part)
    with open(copy / module, "a") as handle:
        handle.write(f"\n{line}  # noqa\n")
    result = lint_imports(copy)
    assert result.returncode != 0
    assert f"{broken}" in result.stdout
    (line,) = [line for line in result.stdout.splitlines() if line.startswith(broken)][:1]
    assert line.endswith("BROKEN") or "BROKEN (" in line
