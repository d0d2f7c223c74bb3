"""``jtag serve`` runs with Python's thread switch interval at ``DBHANDLES_SWITCH_INTERVAL_MS`` (issue 13:
a reader's request waited multiples of CPython's 5 ms behind another actor's CPU-bound thread)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dbhandles.cli.serve import ServeOptions, serve, switch_interval
from dbhandles.server.shutdown import GracefulServer
from dbhandles.settings import Settings


@pytest.fixture
def interval() -> Iterator[float]:
    """The process's switch interval, put back after the test whatever it did."""
    before = sys.getswitchinterval()
    yield before
    sys.setswitchinterval(before)


def test_switch_interval_is_applied_and_restored(interval: float) -> None:
    with switch_interval(0.5):
        assert sys.getswitchinterval() == pytest.approx(0.0005)
    assert sys.getswitchinterval() == interval


def test_switch_interval_is_restored_when_the_server_fails(interval: float) -> None:
    with pytest.raises(RuntimeError), switch_interval(2.0):
        raise RuntimeError("the server stopped")
    assert sys.getswitchinterval() == interval


def test_serve_runs_the_server_at_the_setting(
    tmp_path: Path, interval: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[float] = []

    def run(self: GracefulServer, sockets: object = None) -> None:
        seen.append(sys.getswitchinterval())

    monkeypatch.setattr(GracefulServer, "run", run)
    settings = Settings(home=tmp_path / "home", switch_interval_ms=0.25)
    serve(ServeOptions(port=0), settings)
    assert seen == [pytest.approx(0.00025)]
    assert sys.getswitchinterval() == interval  # the process is left as it was


def test_switch_interval_setting_reads_milliseconds_from_the_environment() -> None:
    settings = Settings.from_env({"DBHANDLES_SWITCH_INTERVAL_MS": "0.5"})
    assert settings.switch_interval_ms == 0.5


@pytest.mark.parametrize("text", ["0", "-1", "0.001", "5000", "fast", "nan"])
def test_switch_interval_setting_refuses_what_python_cannot_use(text: str) -> None:
    with pytest.raises(ValueError, match="DBHANDLES_SWITCH_INTERVAL_MS"):
        Settings.from_env({"DBHANDLES_SWITCH_INTERVAL_MS": text})
