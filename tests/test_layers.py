"""The package's architecture holds: every module imports on its own, and the layers contract of
``pyproject.toml`` (``[tool.importlinter]``, the layers of docs/architecture.md) is kept."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import dbhandles

PACKAGE = Path(dbhandles.__file__).parent
REPO = PACKAGE.parent.parent


def _modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__main__":
            continue
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def _import_alone(module: str) -> tuple[str, int, str]:
    """``(module, exit status, stderr)`` of ``python -c "import module"``."""
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    return module, done.returncode, done.stderr


def test_every_module_imports_first_in_a_fresh_interpreter() -> None:
    """An import cycle hides when the test suite happens to import the right module first; here
    each module is the first thing a new interpreter imports."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(_import_alone, _modules()))
    failed = {module: stderr for module, code, stderr in results if code != 0}
    assert not failed, failed
    assert len(results) > 50


def test_the_layers_contract_is_kept() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    if not lint.exists():
        pytest.fail("lint-imports is missing: pip install -e '.[dev]'")
    done = subprocess.run(
        [str(lint), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "2 kept, 0 broken" in done.stdout  # the layers, and the jtag command path
