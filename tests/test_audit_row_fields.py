"""What an audit row takes from a command's params and result (``audit_rows._attr``): a field's
value, a property's, an extra field's, and ``None`` for a name the model does not have, without
the exception pydantic's ``__getattr__`` raises for it; and the rows of a listing say so."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from dbhandles import Service, Settings
from dbhandles.commands.audit_rows import _attr
from dbhandles.commands.listing import ListParams


class _Loose(BaseModel):
    model_config = ConfigDict(extra="allow")

    collection: str = "c"

    @property
    def db_handle(self) -> str:
        return "from-a-property"


def test_a_row_takes_fields_properties_and_extra_fields_and_none_for_the_rest() -> None:
    loose = _Loose.model_validate({"id": "extra-id"})
    assert _attr(loose, "collection") == "c"
    assert _attr(loose, "db_handle") == "from-a-property"
    assert _attr(loose, "id") == "extra-id"
    assert _attr(_Loose(), "id") is None
    params = ListParams.model_validate({"collection": "notes", "filter": {"a": 1}})
    for _ in range(2):  # the second answer comes from what the first learned of the class
        assert _attr(params, "id") is None
        assert _attr(params, "collection") == "notes"
    assert _attr(None, "id") is None and _attr(object(), "id") is None


def test_a_listing_row_names_its_collection_and_no_record(tmp_path: Path) -> None:
    with Service(settings=Settings(home=tmp_path / "home")) as service:
        service.execute("data/create", {"collection": "notes", "id": "n1", "data": {"a": 1}})
        service.execute("data/list", {"collection": "notes", "filter": {"a": 1}})
        service.execute("data/read", {"collection": "notes", "id": "n1"})
        service.audit.flush()
        rows = service.registry.store.query_audit(limit=10)
    by_command = {row.command: row for row in rows}
    assert by_command["data/list"].collection == "notes"
    assert by_command["data/list"].record_id is None
    assert by_command["data/read"].record_id == "n1"
    assert by_command["data/create"].record_id == "n1"
