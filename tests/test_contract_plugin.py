"""The contract suite runs against a third-party adapter installed through the entry point.

A tiny adapter (the memory adapter under another name) is "installed" the way pip would: a module
and a ``.dist-info`` folder whose ``entry_points.txt`` names it in the ``dbhandles.adapters`` group,
on the ``PYTHONPATH`` of a pytest run started with ``--adapter``. That run finds it through
``importlib.metadata`` and ``register_adapter``, exactly like an installed plugin (docs/architecture.md,
"Writing an adapter").
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

ADAPTER_MODULE = '''
from typing import ClassVar

from dbhandles.adapters.memory import MemoryAdapter


class PluggedAdapter(MemoryAdapter):
    """A third-party adapter: the memory adapter under another name."""

    name: ClassVar[str] = "plugged"
'''


def _install_plugin(site: Path) -> None:
    site.mkdir()
    (site / "plugged_adapter.py").write_text(ADAPTER_MODULE)
    dist = site / "plugged_adapter-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: plugged-adapter\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[dbhandles.adapters]\nplugged = plugged_adapter:PluggedAdapter\n"
    )


def _pytest(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    site = tmp_path / "site"
    if not site.exists():
        _install_plugin(site)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]).rstrip(
            os.pathsep
        ),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    return subprocess.run(
        [
            sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs",
            "--basetemp", str(tmp_path / "basetemp"), *args,
        ],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_contract_suite_runs_against_an_entry_point_adapter(tmp_path: Path) -> None:
    done = _pytest(
        tmp_path,
        "--adapter=plugged",
        "-k", "plugged",
        "-v",
        "tests/contract/test_records.py",
        "tests/contract/test_features.py",
    )  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    passed = re.findall(r"::(\w+)\[plugged\] PASSED", out)
    assert len(passed) >= 10, out[-4000:]
    assert "test_batch_is_all_or_nothing" in passed
    # Skipped by what the adapter declares, never by its name.
    assert "test_raw_inserts_store_rows_as_given_and_skip_taken_ids[plugged] SKIPPED" in out
    assert "the plugged adapter lacks Features.raw_inserts" in out
    # Only the plugin's tests were selected: the built-ins ran in none of them.
    assert not re.search(r"\[(memory|sqlite|json|postgres)\] (PASSED|SKIPPED)", out)


def test_an_adapter_that_is_not_installed_is_a_usage_error(tmp_path: Path) -> None:
    done = _pytest(tmp_path, "--adapter=nosuchadapter", "tests/contract/test_features.py")
    assert done.returncode == 4, done.stdout[-2000:] + done.stderr[-2000:]
    assert "--adapter=nosuchadapter: adapter: unknown adapter" in done.stdout + done.stderr
