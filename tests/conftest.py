"""Shared fixtures: a service per test on a temporary home, and handles on every adapter."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Service, Settings

#: Tests with these markers need a real server or browser: under CI they must run, never skip.
MUST_RUN_UNDER_CI = ("needs_server", "browser", "postgres")
#: The ``user_properties`` key of a test skipped because its adapter lacks a ``Features`` flag
#: (``@pytest.mark.requires``, tests/contract/conftest.py): a fact about the adapter, not a missing
#: server, so the guard below lets it pass.
FEATURE_SKIP = "skipped_for_feature"
_skipped_under_ci: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if (
        report.skipped
        and os.environ.get("CI")
        and any(m in report.keywords for m in MUST_RUN_UNDER_CI)
        and not any(key == FEATURE_SKIP for key, _ in report.user_properties)
    ):
        _skipped_under_ci.append(f"{report.nodeid}: {report.longrepr}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _skipped_under_ci:
        print("\nThese tests must run under CI=true but were skipped:")
        for line in _skipped_under_ci:
            print(f"  {line}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dbhandles", "dbhandles contract suite (tests/contract)")
    group.addoption(
        "--adapter",
        action="append",
        default=[],
        dest="contract_adapters",
        metavar="NAME",
        help="also run the contract suite against this adapter (registered with register_adapter "
        "or installed through the dbhandles.adapters entry point); repeatable",
    )
    group.addoption(
        "--adapter-config",
        default=None,
        dest="contract_adapter_config",
        metavar="JSON",
        help="config keys given to data/open for the --adapter adapters (a file adapter already "
        'gets {"path": <fresh file in the test\'s tmp folder>, "mode": "create"})',
    )


#: Config keys for the adapters added with ``--adapter`` (``--adapter-config``).
THIRD_PARTY_CONFIG: dict[str, Any] = {}


#: The temporary folder Hypothesis keeps its example database and constants cache in for this run.
_hypothesis_home: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    from hypothesis.configuration import set_hypothesis_home_dir

    config.addinivalue_line(
        "markers", "two_tenants: the service fixture holds a token for alice and one for bob"
    )

    from dbhandles import DbHandlesError
    from dbhandles.adapters import get_adapter_class

    # By default Hypothesis writes ./.hypothesis (from collection on): a write outside the tests'
    # temporary folders, so it gets one of its own for the run (failures still print their example).
    _hypothesis_home.append(tempfile.mkdtemp(prefix="dbhandles-hypothesis-"))
    set_hypothesis_home_dir(_hypothesis_home[-1])

    for name in config.getoption("contract_adapters"):
        try:
            get_adapter_class(name)
        except DbHandlesError as exc:
            raise pytest.UsageError(f"--adapter={name}: {exc}") from None
    raw = config.getoption("contract_adapter_config")
    try:
        extra = json.loads(raw) if raw is not None else {}
    except json.JSONDecodeError as exc:
        raise pytest.UsageError(f"--adapter-config: not valid JSON: {exc}") from None
    if not isinstance(extra, dict):
        raise pytest.UsageError("--adapter-config: expects a JSON object")
    THIRD_PARTY_CONFIG.clear()
    THIRD_PARTY_CONFIG.update(extra)


def pytest_unconfigure(config: pytest.Config) -> None:
    while _hypothesis_home:
        shutil.rmtree(_hypothesis_home.pop(), ignore_errors=True)


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
def pg(tmp_path: Path) -> dict[str, Any]:
    """A ``postgres`` adapter config on a fresh schema of the session's server (``tests/pgserver``);
    a test module may define its own ``pg`` (a schema another tool built first)."""
    from tests.pgserver import postgres_config

    return postgres_config(tmp_path)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def service(home: Path, request: pytest.FixtureRequest) -> Iterator[Service]:
    """A service on ``home``, closed after the test; where the test or its module is marked
    ``two_tenants``, holding a token for alice and one for bob (tests/security_helpers.py)."""
    svc = Service(settings=Settings(home=home))
    try:
        if request.node.get_closest_marker("two_tenants") is not None:
            from tests.security_helpers import with_tenants

            with_tenants(svc)
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
    # An adapter added with --adapter: a fresh file if it is a file adapter, then --adapter-config.
    from dbhandles.adapters import FileConfig, get_adapter_class

    base: dict[str, Any] = {}
    if issubclass(get_adapter_class(name).config_model, FileConfig):
        base = {"path": str(tmp_path / f"db.{name}"), "mode": "create"}
    return {**base, **THIRD_PARTY_CONFIG, **extra}


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
