"""Shared fixtures: a service per test on a temporary home, and handles on every adapter."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Service, Settings

#: Tests with these markers need a real server or browser: under CI they must run, never skip.
MUST_RUN_UNDER_CI = ("needs_server", "browser", "postgres")
_skipped_under_ci: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if (
        report.skipped
        and os.environ.get("CI")
        and any(m in report.keywords for m in MUST_RUN_UNDER_CI)
    ):
        _skipped_under_ci.append(f"{report.nodeid}: {report.longrepr}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _skipped_under_ci:
        print("\nThese tests must run under CI=true but were skipped:")
        for line in _skipped_under_ci:
            print(f"  {line}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _postgres_available() -> bool:
    try:
        from tests.pgserver import postgres_binaries
    except ImportError:
        return False
    return postgres_binaries() is not None


ADAPTERS: list[Any] = ["memory", "sqlite", "json"]
if _postgres_available() or os.environ.get("CI"):
    # Under CI a missing PostgreSQL must fail the run, not drop the adapter from the suite.
    ADAPTERS.append(pytest.param("postgres", marks=pytest.mark.postgres, id="postgres"))


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def service(home: Path) -> Iterator[Service]:
    svc = Service(settings=Settings(home=home))
    try:
        yield svc
    finally:
        svc.close()


def adapter_config(name: str, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    """A fresh database config for ``name`` under ``tmp_path``."""
    if name == "sqlite":
        return {"path": str(tmp_path / "db.sqlite"), "mode": "create", **extra}
    if name == "json":
        return {"path": str(tmp_path / "db.json"), "mode": "create", **extra}
    if name == "memory":
        return dict(extra)
    if name == "postgres":
        from tests.pgserver import postgres_config

        return postgres_config(tmp_path, **extra)
    raise ValueError(name)


@pytest.fixture(params=ADAPTERS)
def adapter_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db(service: Service, adapter_name: str, tmp_path: Path) -> str:
    """A handle on a fresh database of each adapter."""
    result = service.execute(
        "data/open", {"adapter": adapter_name, "config": adapter_config(adapter_name, tmp_path)}
    )
    return str(result["dbHandle"])


@pytest.fixture(params=["inline", "process"])
def import_parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs an import test twice: lines parsed in the writer, and in the parser process (whatever
    the file's size; ``--parser`` given explicitly still wins)."""
    from dbhandles.importer import parallel

    forced: str = request.param
    monkeypatch.setattr(
        parallel,
        "use_process",
        lambda mode, size: mode == "process" or (mode == "auto" and forced == "process"),
    )
    return forced
