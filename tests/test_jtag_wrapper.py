"""The ``./jtag`` wrapper runs the code of the checkout it sits in.

A virtualenv's editable install (or a ``PYTHONPATH`` set by the caller) may point at another copy of
``dbhandles``; the wrapper puts its own ``src/`` first, so ``CLONE/jtag`` never runs someone else's
tree (an outside tester's clone with a linked virtualenv ran the main tree's code before).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_the_wrapper_runs_its_own_checkout_before_any_other_copy_on_the_path(
    tmp_path: Path,
) -> None:
    impostor = tmp_path / "other" / "dbhandles"
    (impostor / "cli").mkdir(parents=True)
    (impostor / "__init__.py").write_text("")
    (impostor / "cli" / "__init__.py").write_text("")
    (impostor / "cli" / "__main__.py").write_text("print('the other copy')\n")
    env = {
        **os.environ,
        "PYTHONPATH": str(tmp_path / "other"),
        "DBHANDLES_HOME": str(tmp_path / "home"),
    }
    shown = subprocess.run(
        [str(REPO / "jtag"), "help"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    assert "the other copy" not in shown.stdout
    assert "Usage: jtag" in shown.stdout
