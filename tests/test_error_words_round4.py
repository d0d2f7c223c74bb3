"""Issue #14, fourth outside round: a database a ``data/open`` cannot find or read is named by its
config field (``config.path``, ``config.schema``) and its path is quoted as JSON, on every adapter
that has a file or a schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dbhandles import DbHandlesError, Service
from dbhandles.values import json_text


def _refused(service: Service, params: dict[str, Any]) -> DbHandlesError:
    with pytest.raises(DbHandlesError) as caught:
        service.execute("data/open", params)
    return caught.value


@pytest.mark.parametrize("adapter", ["sqlite", "json"])
@pytest.mark.parametrize("mode", ["readwrite", "readonly"])
def test_a_missing_database_file_is_named_by_config_path_and_quoted(
    service: Service, tmp_path: Path, adapter: str, mode: str
) -> None:
    path = str(tmp_path / 'q"x.txt')
    error = _refused(service, {"adapter": adapter, "config": {"path": path, "mode": mode}})
    assert (error.code, error.field) == ("database_not_found", "config.path"), error.message
    assert error.message.startswith(f"config.path: {json_text(path)} does not exist; "), (
        error.message
    )


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b'{"format": "other"}',
        b'{"format": "dbhandles-json", "collections": {"c": 1}}',
    ],
    ids=["invalid JSON", "another format", "a collection that is no list"],
)
def test_a_file_that_is_not_a_json_database_is_named_by_config_path_and_quoted(
    service: Service, tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / 'q"x.json'
    path.write_bytes(content)
    error = _refused(
        service, {"adapter": "json", "config": {"path": str(path), "mode": "readwrite"}}
    )
    assert (error.code, error.field) == ("not_a_database", "config.path"), error.message
    said = f"config.path: {json_text(str(path))}"
    assert error.message.startswith(
        (f"{said} is not a dbhandles JSON database", f"{said}: collection")
    ), error.message


def test_a_missing_postgresql_schema_is_named_by_config_schema(
    service: Service, tmp_path: Path
) -> None:
    from tests.pgserver import postgres_config

    config = postgres_config(tmp_path, mode="readwrite")
    config["schema"] = config["schema"] + "_missing"
    error = _refused(service, {"adapter": "postgres", "config": config})
    assert (error.code, error.field) == ("database_not_found", "config.schema"), error.message
    assert error.message.startswith(f"config.schema: schema {json_text(config['schema'])} "), (
        error.message
    )
