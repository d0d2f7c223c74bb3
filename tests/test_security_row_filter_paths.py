"""Issue 12: a row filter naming a path no collection's record has (``ownér``) is refused on writes
as on reads, so nothing is written through a handle that the handle cannot then list.

Found from outside: ``{"ownér": "alice"}`` was accepted on grant and open (it may name a column of
a table dbhandles did not create), reads of a collection answered ``invalid_filter`` and writes
went through, storing ``{"ownér": "alice", "owner": "carol"}`` where carol's filter sees it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dbhandles import Service
from tests.security_helpers import ALICE, refused, two_tenants

FILTER = {"ownér": "alice"}


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    with two_tenants(tmp_path) as svc:
        yield svc


@pytest.mark.parametrize("adapter", ["sqlite", "json", "memory"])
def test_a_filter_no_collection_can_use_is_refused_on_every_record_door(
    service: Service, adapter: str
) -> None:
    config = {"name": "m"} if adapter == "memory" else {"path": f"a.{adapter}", "mode": "create"}
    opened = service.execute("data/open", {"adapter": adapter, "config": config,
                                           "permissions": {"rowFilter": FILTER}}, context=ALICE)  # fmt: skip
    handle = opened["dbHandle"]
    # A record the update below would rewrite, written through her own plain handle.
    plain = service.execute("data/open", {"adapter": adapter, "config": config}, context=ALICE)
    service.execute("data/create", {"dbHandle": plain["dbHandle"], "collection": "n", "id": "x",
                                    "data": {"ownér": "alice"}}, context=ALICE)  # fmt: skip
    record = {"ownér": "alice", "owner": "carol"}
    for name, params in (
        ("data/create", {"collection": "n", "data": record}),
        ("data/update", {"collection": "n", "id": "x", "data": record}),
        ("data/batch", {"operations": [{"op": "create", "collection": "n", "data": record}]}),
        ("data/list", {"collection": "n"}),
        ("data/count", {"collection": "n"}),
    ):
        error = refused(service, name, {"dbHandle": handle, **params})
        assert error.code in {"invalid_filter", "invalid_params"}, (name, error.message)
        assert "ownér" in error.message, (name, error.message)
