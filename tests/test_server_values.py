"""Exact values through HTTP (issue 14, part 2): a body's JSON text is read once, as orjson reads it
(the last of duplicated keys wins, and that is what every adapter's filters see), and a value no
record can hold is a 400 naming its field, never a 500; the refused request writes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Service
from tests.conftest import ADAPTERS, adapter_config
from tests.servers import app_client
from tests.test_server_http import assert_error


@pytest.fixture
def client(service: Service) -> Iterator[Any]:
    with app_client(service) as test_client:
        yield test_client


def _post(client: Any, command: str, text: str) -> Any:
    return client.post(
        f"/commands/{command}", content=text.encode(), headers={"content-type": "application/json"}
    )


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_values_through_http(client: Any, tmp_path: Path, adapter: str) -> None:
    opened = client.post("/commands/data/open",
                         json={"adapter": adapter, "config": adapter_config(adapter, tmp_path)})  # fmt: skip
    handle = opened.json()["dbHandle"]
    where = f'"dbHandle": "{handle}", "collection": "c"'
    created = _post(
        client, "data/create", f'{{{where}, "id": "d", "data": {{"label": "a", "label": "b"}}}}'
    )
    assert created.status_code == 200, created.text
    for label, expected in (("a", []), ("b", ["d"])):
        listed = client.post("/commands/data/list",
                             json={"dbHandle": handle, "collection": "c", "filter": {"label": label}})  # fmt: skip
        assert [item["id"] for item in listed.json()["items"]] == expected
    refused = [
        ('{"t": "a\\u0000"}', "data.t"),
        ('{"deep": {"k\\u0000": 1}}', "data.deep"),
        ('{"n": [1, 9223372036854775808]}', "data.n[1]"),
        ('{"n": 1e300}', "data.n"),
    ]
    for data, field in refused:
        response = _post(client, "data/create", f'{{{where}, "id": "x", "data": {data}}}')
        body = assert_error(response, "invalid_params")
        assert field in body["error"], body
    batch = _post(
        client,
        "data/batch",
        f'{{"dbHandle": "{handle}", "operations": ['
        '{"op": "create", "collection": "c", "id": "ok", "data": {"v": 1}},'
        '{"op": "create", "collection": "c", "id": "bad", "data": {"v": "\\u0000"}}]}',
    )
    assert_error(batch, "invalid_params")
    listed = client.post("/commands/data/list", json={"dbHandle": handle, "collection": "c"})
    assert [item["id"] for item in listed.json()["items"]] == ["d"]
    lone = _post(client, "data/create", f'{{{where}, "data": {{"t": "\\ud800"}}}}')
    assert_error(lone, "invalid_params", "body")  # not JSON text that orjson reads (RFC 8259 §8.2)
