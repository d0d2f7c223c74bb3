"""Per-handle permissions (Phase 2): what a handle may do, on which collections, to which rows.

A handle's permissions can only narrow what its opener may do: ``narrow`` intersects them with the
opener's own ceiling, and nothing given means the opener's own rights.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from dbhandles.adapters.foreign_cascades import UNKNOWN
from dbhandles.errors import InvalidParams
from dbhandles.filters import (
    FilterNode,
    check_collection_values,
    parse_filter,
    validate_collection,
)
from dbhandles.jsonmodel import JsonModel
from dbhandles.lazy import LazyMapping
from dbhandles.param_errors import pydantic_words
from dbhandles.values import json_text, name_text

__all__ = [
    "DEFAULT_CEILINGS",
    "GRANT_ACCESS",
    "PRESETS",
    "PRESET_FIELDS",
    "Isolation",
    "Permissions",
    "ResolvedName",
    "effective",
    "narrow",
    "parse_permissions",
]

Isolation = Literal["none", "soft", "strict"]


@dataclass(frozen=True, slots=True)
class ResolvedName:
    """What a collection name reaches in one database (``Session.resolve_collection``)."""

    #: The table or collection read and written, as stored.
    name: str
    #: Equal for two names of one table (``Session.collection_key``).
    key: str
    #: A foreign table's fields as this handle serves them (``None``: a collection).
    fields: frozenset[str] | None = None
    #: What a view reads (``Session.view_sources``), each as ``(name, key)``: a view is refused
    #: when any of them is.
    reads: tuple[tuple[str, str], ...] = ()
    #: What the database writes when rows of this table are deleted (``Session.cascade_targets``),
    #: each as ``(name, key, action)``: a delete is refused when the handle may not reach any.
    deletes: tuple[tuple[str, str, str], ...] = ()
    #: The same for a change of a key other tables reference (``ON UPDATE`` actions) or any
    #: update (triggers).
    updates: tuple[tuple[str, str, str], ...] = ()
    #: The same for an insert (triggers).
    inserts: tuple[tuple[str, str, str], ...] = ()
    #: Under a row filter: the other tables whose writes make the database write this one
    #: (``Session.derived_from``), each as ``(name, how)``: refused to a row-filtered handle.
    derived: tuple[tuple[str, str], ...] = ()
    #: A foreign table's kind as ``data/schema`` shows it (``table``, ``view``...; ``None``: a
    #: collection).
    kind: str | None = None


class Permissions(JsonModel):
    """What one handle allows. Defaults are the original system's "god mode"."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True
    )

    read: bool = True
    write: bool = True
    delete: bool = True
    schema_: bool = Field(default=True, alias="schema")
    allowed_collections: tuple[str, ...] | None = None
    denied_collections: tuple[str, ...] = ()
    owner: str | None = None
    isolation_mode: Isolation = "none"
    row_filter: dict[str, Any] | None = None

    @field_validator("allowed_collections", "denied_collections", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        if value is None:
            return value
        if not isinstance(value, list | tuple):
            raise ValueError("expects a list of collection names")
        # Kept as spelled: a PostgreSQL schema may hold both ``orders`` and ``"Orders"``; each
        # database compares the names its own way (``collection_refusal``).
        return tuple(validate_collection(v, "collection") for v in value)

    @field_validator("row_filter")
    @classmethod
    def _filter(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        node = parse_filter(value, "permissions.rowFilter")
        if node is not None:  # a grant is stored (PostgreSQL's text cannot hold U+0000)
            check_collection_values(node, "permissions.rowFilter")
        return value

    def row_filter_node(self) -> FilterNode | None:
        return parse_filter(self.row_filter, "permissions.rowFilter")

    def allows(self, operation: str) -> bool:
        return bool(
            {
                "read": self.read,
                "write": self.write,
                "delete": self.delete,
                "schema": self.schema_,
            }.get(operation, True)
        )

    def collection_refusal(
        self, collection: str, names: Mapping[str, ResolvedName] | None = None
    ) -> str | None:
        """Why ``collection`` is refused to this handle, or ``None``.

        Decided on the table the name reaches: ``names`` maps a name (the one asked for and each
        listed one) to what the database resolves it to; without it (or for a name it lacks),
        names are compared ignoring case. A denied entry refuses the table it names and every
        spelling of it in any case (over-refusing is safe); an allowed entry allows only the
        table it resolves to, compared as the database compares names.
        """

        def of(name: str) -> ResolvedName:
            found = None if names is None else names.get(name)
            return found if found is not None else ResolvedName(name, name.lower())

        asked = of(collection)
        for source, key in asked.reads:
            if source.startswith(UNKNOWN):
                # Code whose reads cannot be known (a PostgreSQL function a view or a policy
                # calls: postgres_reach.opaque); any table may be among them.
                return (
                    f"collection {json_text(collection, 80)} runs code whose reads dbhandles "
                    f"cannot know ({source[len(UNKNOWN) :]}), and this handle may reach only "
                    "some tables or rows (read it through a handle without allowedCollections, "
                    "deniedCollections or rowFilter)"
                )
            refusal = self.collection_refusal(
                source, {**(names or {}), source: ResolvedName(source, key)}
            )
            if refusal is not None:
                # A view, a virtual table (its content table) or a virtual table's storage table:
                # the name does not say which, so the words name none of them.
                return (
                    f"collection {json_text(collection, 80)} reads, through SQL of its own, what "
                    f"this handle may not: {refusal}"
                )
        shown = json_text(collection, 80)
        if asked.name != collection:
            shown += f" (table {json_text(asked.name, 80)})"
        spellings = {collection.lower(), asked.name.lower()}
        for denied in self.denied_collections:
            if denied.lower() in spellings or of(denied).key == asked.key:
                return f"collection {shown} is denied to this handle"
        if self.allowed_collections is not None and not any(
            of(allowed).key == asked.key for allowed in self.allowed_collections
        ):
            return f"collection {shown} is not in this handle's allowed list"
        return None

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


#: What each preset sets (fields by their Python names; the others keep their defaults).
PRESET_FIELDS: Mapping[str, Mapping[str, Any]] = {
    "GOD_MODE": {},
    "READ_ONLY": {"write": False, "delete": False, "schema_": False},
    "TRAINING_JOB": {
        "delete": False,
        "allowed_collections": ("training_metrics", "checkpoints", "evaluation_results"),
    },
    "PERSONA_KNOWLEDGE": {"schema_": False, "isolation_mode": "strict"},
    "COLLABORATIVE": {"delete": False, "schema_": False, "isolation_mode": "soft"},
}
#: The presets as permissions, each made on its first lookup: making one builds the model's
#: validator, which a process that never looks at a preset (a CLI command on the default
#: database) should not pay for at import.
PRESETS: Mapping[str, Permissions] = LazyMapping(
    PRESET_FIELDS, lambda name: Permissions(**PRESET_FIELDS[name])
)


# The policy's tables of rights (``security/policy.py``), made on first lookup as the presets are.
_CEILINGS: dict[str, Callable[[], Permissions | None]] = {
    "none": lambda: Permissions(read=False, write=False, delete=False, schema_=False),
    "read": lambda: PRESETS["READ_ONLY"],
    "write": lambda: Permissions(delete=False, schema_=False),
    "full": lambda: None,
}
_GRANTS: dict[str, Callable[[], Permissions]] = {
    "read": lambda: PRESETS["READ_ONLY"],
    "write": lambda: Permissions(schema_=False),
    "full": Permissions,
}
#: What a non-admin actor may do in the shared default database, by ``DBHANDLES_DEFAULT_ACCESS``
#: (``None``: everything).
DEFAULT_CEILINGS: Mapping[str, Permissions | None] = LazyMapping(
    _CEILINGS, lambda access: _CEILINGS[access]()
)
#: The rights of ``data/grant``'s ``access`` levels (narrowed further by its ``permissions``).
GRANT_ACCESS: Mapping[str, Permissions] = LazyMapping(_GRANTS, lambda access: _GRANTS[access]())


def parse_permissions(raw: dict[str, Any] | None, preset: str | None = None) -> Permissions | None:
    """Build permissions from a preset name and/or explicit fields (explicit fields win)."""
    raw = dict(raw or {})
    given = raw.pop("preset", None)
    preset = given if given is not None else preset
    if preset is None and not raw:
        return None
    base: dict[str, Any] = {}
    if preset is not None:
        if not isinstance(preset, str) or preset not in PRESETS:
            raise InvalidParams(
                f"permissions.preset: unknown preset {json_text(preset, 80)}; known: {', '.join(PRESETS)}",
                field="permissions.preset",
            )
        # Only what the preset sets: a preset without an isolation mode asks for none (a reopen
        # with it keeps the database's recorded mode, policy.check_open).
        base = PRESETS[preset].model_dump(by_alias=True, exclude_unset=True)
    try:
        return Permissions.model_validate({**base, **raw})
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(name_text(str(p)) for p in err["loc"])
        raise InvalidParams(
            f"permissions.{where}: {pydantic_words(err)}", field=f"permissions.{where}"
        ) from exc


def narrow(requested: Permissions | None, ceiling: Permissions | None) -> Permissions | None:
    """The intersection: a handle never allows more than its opener's ceiling."""
    if ceiling is None:
        return requested
    if requested is None:
        return ceiling
    allowed: tuple[str, ...] | None
    if requested.allowed_collections is None:
        allowed = ceiling.allowed_collections
    elif ceiling.allowed_collections is None:
        allowed = requested.allowed_collections
    else:
        # Matched ignoring case, kept as the ceiling spells them: never more than the ceiling
        # (SQLite tells ``café`` from ``CAFÉ``, so the requested spelling could be another table).
        asked = {c.lower() for c in requested.allowed_collections}
        allowed = tuple(c for c in ceiling.allowed_collections if c.lower() in asked)
    filters = [f for f in (ceiling.row_filter, requested.row_filter) if f]
    order = {"none": 0, "soft": 1, "strict": 2}
    return Permissions(
        read=requested.read and ceiling.read,
        write=requested.write and ceiling.write,
        delete=requested.delete and ceiling.delete,
        schema_=requested.schema_ and ceiling.schema_,
        allowed_collections=allowed,
        denied_collections=tuple(
            sorted({*requested.denied_collections, *ceiling.denied_collections})
        ),
        owner=requested.owner or ceiling.owner,
        isolation_mode=max(requested.isolation_mode, ceiling.isolation_mode, key=order.__getitem__),
        row_filter=None if not filters else filters[0] if len(filters) == 1 else {"$and": filters},
    )


def effective(permissions: Permissions | None, readonly: bool) -> Permissions | None:
    """What a handle opened with ``permissions`` really allows, for its answers (``data/open``,
    ``data/list-handles``): a read-only handle (``config.mode: readonly``) writes, deletes and
    changes the schema of nothing, whatever its permissions or grant would allow. ``None`` (no
    limits) stays ``None`` for a handle that may write; a read-only one answers the ``READ_ONLY``
    preset's rights."""
    if not readonly:
        return permissions
    if permissions is None:
        return PRESETS["READ_ONLY"]
    return permissions.model_copy(update={"write": False, "delete": False, "schema_": False})
