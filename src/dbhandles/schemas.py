"""Optional collection schemas: a pydantic model per collection, validated on create and update."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from dbhandles.errors import ValidationFailed
from dbhandles.filters import (
    RESERVED_FIELDS,
    check_collection_query,
    validate_collection,
    validate_path,
)
from dbhandles.values import json_text

__all__ = ["Declaration", "SchemaRegistry"]


@dataclass(frozen=True, slots=True)
class Declaration:
    """A declared collection: its model (optional) and the field paths to index."""

    collection: str
    model: type[BaseModel] | None
    indexes: tuple[tuple[str, ...], ...]

    def fields(self) -> list[dict[str, Any]]:
        """Declared fields as shown by ``data/schema``."""
        if self.model is None:
            return []
        schema = self.model.model_json_schema()
        required = set(schema.get("required", []))
        out = []
        for name, spec in schema.get("properties", {}).items():
            out.append(
                {
                    "name": name,
                    "type": spec.get("type") or _any_of(spec),
                    "required": name in required,
                    "indexed": (name,) in self.indexes,
                    **({"default": spec["default"]} if "default" in spec else {}),
                    **({"description": spec["description"]} if "description" in spec else {}),
                }
            )
        return out

    def validate(self, record: dict[str, Any]) -> dict[str, Any]:
        """Validate the user fields of a full record; return the record with coerced values.

        Fields the model does not declare are kept (unless the model forbids extras), so nothing is lost.

        Raises:
            ValidationFailed: naming the first failing field.
        """
        if self.model is None:
            return record
        user = {k: v for k, v in record.items() if k not in RESERVED_FIELDS}
        try:
            model = self.model.model_validate(user)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "data"
            raise ValidationFailed(
                f"data.{where}: {err['msg']} (collection {json_text(self.collection, 80)} is declared with "
                f"{self.model.__name__})",
                field=f"data.{where}",
            ) from exc
        dumped = model.model_dump(mode="json")
        return {**record, **{k: v for k, v in dumped.items() if k not in RESERVED_FIELDS}}


def _any_of(spec: dict[str, Any]) -> str:
    types = [s.get("type", "object") for s in spec.get("anyOf", [])]
    return "|".join(types) if types else "any"


class SchemaRegistry:
    """Declarations by collection name (case-insensitive, like the collections themselves)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._decls: dict[str, Declaration] = {}

    def declare(
        self,
        collection: str,
        model: type[BaseModel] | None = None,
        indexes: list[str] | tuple[str, ...] = (),
    ) -> Declaration:
        validate_collection(collection)
        paths = tuple(validate_path(p, f"indexes[{i}]") for i, p in enumerate(indexes))
        # A collection's fields are identifiers: refused here on every adapter, not at the first
        # write on the adapters that build indexes.
        check_collection_query(None, paths)
        decl = Declaration(collection, model, paths)
        with self._lock:
            self._decls[collection.lower()] = decl
        return decl

    def get(self, collection: str) -> Declaration | None:
        return self._decls.get(collection.lower())
