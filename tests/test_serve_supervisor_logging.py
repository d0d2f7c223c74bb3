"""Issue 13: the supervisor of ``jtag serve --workers N`` logs as a server process does
(``cli/serve.py``: ``log_like_a_server``): its ``dbhandles.*`` lines (a worker restarted, a
connection it could not hand over) reach stderr in uvicorn's format at ``--log-level``, tokens
redacted. It made no ``uvicorn.Config``, so nothing configured its logging and those lines were
lost (INFO) or printed bare (WARNING, Python's last resort)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from dbhandles.cli import serve as serve_module
from dbhandles.cli import workers
from dbhandles.cli.serve import ServeOptions
from dbhandles.settings import Settings

_LOGGERS = ("dbhandles", "uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


@pytest.fixture
def logging_restored() -> Iterator[None]:
    """Every logger this test configures, as it was before (other tests count on propagation)."""
    saved = []
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level, list(logger.handlers), list(logger.filters),
                      logger.propagate, logger.disabled))  # fmt: skip
    yield
    for logger, level, handlers, filters, propagate, disabled in saved:
        logger.setLevel(level)
        logger.handlers[:] = handlers
        logger.filters[:] = filters
        logger.propagate = propagate
        logger.disabled = disabled


@pytest.mark.parametrize("level", ["info", "warning"])
def test_the_workers_supervisor_logs_like_a_server(
    home: Path,
    logging_restored: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    level: str,
) -> None:
    def supervise(options: ServeOptions, settings: Settings) -> None:
        log = logging.getLogger("dbhandles.server.workers")
        log.info("worker 1 restarted")
        log.warning(
            "could not hand a connection to worker 0: Bearer dbh_0123456789ab_secretsecretsecretsecret"
        )

    monkeypatch.setattr(workers, "serve_workers", supervise)
    options = ServeOptions(workers=2, log_level=level, port=0)
    serve_module.serve(options, Settings(home=home))
    err = capsys.readouterr().err
    assert ("INFO:     worker 1 restarted" in err) is (level == "info"), err
    assert "WARNING:  could not hand a connection to worker 0" in err, err
    assert "secretsecret" not in err, err
