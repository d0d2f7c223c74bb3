"""A PostgreSQL handle a non-admin actor opened before ``passwordOnly`` existed (its stored config
has no such key) is reloaded with it on (``HandleRegistry._entry_from_row``), as
``AccessPolicy.check_open`` gives it to every new one: an upgraded home's stored tenant handles never
reconnect as the server's own database identity (issue 12). An administrator's stays as stored.
The connection itself is checked in ``tests/test_postgres_password_only.py``; here no server is
needed (resolving a handle does not connect)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dbhandles import Service, Settings
from dbhandles.adapters.postgres_config import PostgresConfig
from dbhandles.clock import now_ms
from dbhandles.store import HandleRow

#: A config as data/open stored it before the field existed (no ``passwordOnly`` key).
LEGACY = {"host": "/run/postgresql", "port": 5432, "dbname": "db", "user": "u", "password": "pw"}


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    with Service(settings=Settings(home=tmp_path / "home")) as svc:
        svc.tokens.create("ops", admin=True)
        svc.tokens.create("alice")
        yield svc


def _stored(service: Service, owner: str | None) -> PostgresConfig:
    handle = str(uuid.uuid4())
    now = now_ms()
    row = HandleRow(handle, "postgres", dict(LEGACY), now, now, True, owner, None)
    service.access.store.put_handle(row)
    config = service.registry.resolve(handle).config
    assert isinstance(config, PostgresConfig)
    return config


def test_a_non_admins_stored_postgres_handle_is_reloaded_password_only(service: Service) -> None:
    assert _stored(service, "alice").password_only is True
    # An actor with no token yet (a grantee, a removed token's holder) is not an administrator.
    assert _stored(service, "carol").password_only is True


@pytest.mark.parametrize("owner", ["ops", "admin", "local", None])
def test_an_administrators_stored_handle_stays_as_stored(
    service: Service, owner: str | None
) -> None:
    assert _stored(service, owner).password_only is False
