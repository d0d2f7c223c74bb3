"""The JSON Schema of the values the commands parse themselves: names, filters, ``orderBy``, ``fields``,
record data, file paths and times.

The params models annotate their fields with these (``Annotated[..., WithJsonSchema(...)]``), so the
``GET /commands`` schemas and the OpenAPI document (server/openapi.py) say what the server accepts.
The patterns are built from the constants the parsers use (``filters``, ``documents``), so the two
cannot drift; tests/test_openapi_fuzz.py checks the document against a running server.

Named schemas (``Filter``, ``OrderBy``...) are referred to with ``ref(name)``; generating a model's
schema with ``CommandSchema`` turns those into ``$ref`` and adds the ones it needs to the definitions
(``$defs`` for ``GET /commands``, ``components/schemas`` in the OpenAPI document).

What JSON Schema cannot say is a ``format`` of our own (an annotation: validators let any string
through; docs/server.md describes each): ``re2`` (``$regex`` must compile as RE2), ``dbh-path``
(the limits of a file name are in bytes: at most 4095 for the path, 255 for one name),
``dbh-cursor`` (a ``nextCursor`` as data/list returned it, for the same ``orderBy``).
"""

from __future__ import annotations

import functools
import re
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    GetJsonSchemaHandler,
    ValidationInfo,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import (
    DefsRef,
    GenerateJsonSchema,
    JsonSchemaKeyT,
    JsonSchemaMode,
    JsonSchemaValue,
)
from pydantic_core import CoreSchema

from dbhandles.context import ACTOR_PATTERN
from dbhandles.dbfiles import PATH_SCHEMA, check_path_text
from dbhandles.documents import MAX_TABLE_ID_LENGTH, NUMBER_BOUND, check_record_id, id_text
from dbhandles.errors import InvalidParams
from dbhandles.filters import (
    COLLECTION_PATTERN,
    IDENT_PATTERN,
    MAX_IN_VALUES,
    MAX_PATH_PARTS,
    MAX_REGEX_LENGTH,
    MAX_SORT_KEYS,
    RESERVED_FIELDS,
    TOP_FIELD_PATTERN,
    parse_fields,
    parse_filter,
    parse_order_by,
    validate_collection,
    validate_path,
)
from dbhandles.handle_entry import HANDLE_PATTERN, check_handle_name
from dbhandles.security.permissions import PRESET_FIELDS, PRESETS, Isolation
from dbhandles.values import MAX_VERSION, json_text

__all__ = [
    "FIELD_PATH_PATTERN",
    "MAX_COUNT",
    "ORDER_KEYWORDS",
    "SCHEMAS",
    "SETTING_MAXIMUM",
    "ActorName",
    "CollectionName",
    "CommandSchema",
    "DataSpec",
    "ExpectedVersion",
    "FieldPath",
    "FieldsSpec",
    "HandleName",
    "NewRecordId",
    "OptionalFilterSpec",
    "OrderBySpec",
    "PatchSpec",
    "PathText",
    "RecordId",
    "SettingMaximum",
    "apply_settings",
    "check_order_keywords",
    "like",
    "model_ref",
    "params_of",
    "ref",
]

if TYPE_CHECKING:
    from dbhandles.settings import Settings

#: The key of a reference to a named schema until ``CommandSchema`` makes it a ``$ref`` (pydantic
#: resolves every ``$ref`` it meets against its own definitions).
_REF_KEY = "x-dbh-ref"
_MODEL_KEY = "x-dbh-model"
_COMMAND_KEY = "x-dbh-params-of"
_ACTOR = re.compile(ACTOR_PATTERN)


def ref(name: str) -> dict[str, Any]:
    """A reference to the named schema ``name`` (of ``SCHEMAS``)."""
    return {_REF_KEY: name}


def like(name: str) -> WithJsonSchema:
    """A field's schema: the named one."""
    return WithJsonSchema(ref(name))


def _caseless(word: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in word)


_IDENT = IDENT_PATTERN.removeprefix("^").removesuffix("$")
_NO_SUBFIELDS = "(?!(?:" + "|".join(sorted(RESERVED_FIELDS)) + r")\.)"
_REST = f"(?:\\.{_IDENT}){{0,{MAX_PATH_PARTS - 1}}}"
#: A dotted field path of identifiers only: the shorthands (``orderBy`` text such as '-name' or
#: 'name desc', ``fields`` as one comma-separated string) where a name with spaces would be ambiguous.
_PATH = f"{_NO_SUBFIELDS}{_IDENT}{_REST}"
#: A dotted field path (``validate_path``): a top-level field (any name without '.', control
#: characters, a leading '$' or surrounding whitespace: a foreign table's ``Order Total``), then up to
#: 15 identifiers; a system field has no sub-fields.
FIELD_PATH_PATTERN = f"^{_NO_SUBFIELDS}(?:{TOP_FIELD_PATTERN}){_REST}$"
#: A field path in the comma-separated text of ``fields``: its first part holds no ','.
_LISTED = f"{_NO_SUBFIELDS}(?:{TOP_FIELD_PATTERN.replace('[^', '[^,')}){_REST}"
_DIRECTION = f"(?:{_caseless('asc')}|{_caseless('desc')})"
#: Words people write for an order that is not a field (``--orderBy=random``): refused, not read as
#: a field that no record has (which sorted by id, silently). A field so named is ``{"field": ...}``.
ORDER_KEYWORDS = ("random", "rand", "shuffle")
_NOT_KEYWORD = "(?! *-?(?:" + "|".join(_caseless(w) for w in ORDER_KEYWORDS) + ")(?:[ :]|$))"

_SCALAR = {"type": ["string", "number", "boolean", "null"]}
_COLLECTION = {"type": "string", "pattern": COLLECTION_PATTERN}
_ORDERED = {"type": ["string", "number", "boolean"]}
_VALUES = {"type": "array", "items": _SCALAR, "maxItems": MAX_IN_VALUES}


def _permissions(
    description: str, *, isolation: list[str], presets: list[str], owner: dict[str, Any]
) -> dict[str, Any]:
    """The schema of ``security.permissions.parse_permissions``'s input, as far as the caller may go."""
    return {
        "type": "object",
        "description": description,
        "additionalProperties": False,
        "properties": {
            **{key: {"type": "boolean"} for key in ("read", "write", "delete", "schema")},
            "allowedCollections": {"anyOf": [{"type": "array", "items": _COLLECTION},
                                             {"type": "null"}]},
            "deniedCollections": {"type": "array", "items": _COLLECTION},
            "owner": owner,
            "isolationMode": {"enum": isolation},
            "rowFilter": {"anyOf": [ref("Filter"), {"type": "null"}]},
            "preset": {"anyOf": [{"enum": presets}, {"type": "null"}]},
        },
    }  # fmt: skip


SCHEMAS: dict[str, dict[str, Any]] = {
    "FieldPath": {
        "type": "string",
        "pattern": FIELD_PATH_PATTERN,
        "description": "A dotted field path such as metadata.qualityScore.",
    },
    "Filter": {
        "type": "object",
        "description": "A Mongo-style filter (docs/filters.md): field paths to a value (equality) "
        "or to an object of operators, and $and/$or/$not; at most 32 levels deep.",
        "properties": {
            "$and": {"type": "array", "items": ref("Filter")},
            "$or": {"type": "array", "items": ref("Filter")},
            "$not": ref("Filter"),
        },
        "patternProperties": {FIELD_PATH_PATTERN: ref("FieldCondition")},
        "additionalProperties": False,
    },
    "FieldCondition": {
        "description": "A value the field equals, or an object of operators.",
        "anyOf": [_SCALAR, ref("FieldOperators")],
    },
    "FieldOperators": {
        "type": "object",
        "minProperties": 1,
        "additionalProperties": False,
        "properties": {
            "$eq": _SCALAR,
            "$ne": _SCALAR,
            "$gt": _ORDERED,
            "$gte": _ORDERED,
            "$lt": _ORDERED,
            "$lte": _ORDERED,
            "$in": _VALUES,
            "$nin": _VALUES,
            "$exists": {"type": "boolean"},
            "$regex": {
                "type": "string",
                "maxLength": MAX_REGEX_LENGTH,
                "format": "re2",
                "description": "An RE2 regular expression (no backreferences or look-around).",
            },
            "$contains": _ORDERED,
            "$not": ref("FieldOperators"),
        },
    },
    "SortKey": {
        "description": "A field name; '-name', 'name desc' or 'name:desc' sort descending.",
        "anyOf": [
            {
                "type": "string",
                "pattern": f"^{_NOT_KEYWORD} *(?:-{_PATH}|{_PATH}|{_PATH}[ :]+{_DIRECTION}[ :]*) *$",
            },
            {
                "type": "object",
                "required": ["field"],
                "additionalProperties": False,
                "properties": {
                    "field": ref("FieldPath"),
                    "direction": {"type": "string", "pattern": f"^{_DIRECTION}$"},
                },
            },
        ],
    },
    "OrderBy": {
        "description": "Sort keys, most significant first (id always breaks ties); a bare 'asc' "
        "or 'desc' sorts by createdAt.",
        "anyOf": [
            {"type": "array", "items": ref("SortKey"), "maxItems": MAX_SORT_KEYS},
            ref("SortKey"),
            {"type": "null"},
        ],
    },
    "Fields": {
        "description": "A projection: field paths (a list, or one string separated by commas).",
        "anyOf": [
            {
                "type": "array",
                "items": {"type": "string", "pattern": f"^ *{FIELD_PATH_PATTERN[1:-1]} *$"},
            },
            {"type": "string", "pattern": f"^ *(?:{_LISTED})? *(?:, *(?:{_LISTED})? *)*$"},
            {"type": "null"},
        ],
    },
    "RecordIdValue": {
        "description": "A record id: text, or a number for the numeric key of a table dbhandles "
        'did not create (taken as its text: 3.0 is "3")',
        "anyOf": [
            {"type": "string", "minLength": 1, "maxLength": MAX_TABLE_ID_LENGTH},
            # The numbers of a record (JsonValue): strictly between -2**63 and 2**63.
            {"type": "number", "exclusiveMinimum": -NUMBER_BOUND, "exclusiveMaximum": NUMBER_BOUND},
        ],
    },
    "StoredRecordIdValue": {
        "description": "A stored record's id: text, or a number (a numeric key of a table "
        "dbhandles did not create, taken as its text), -2**63 included",
        "anyOf": [
            {"type": "string", "minLength": 1, "maxLength": MAX_TABLE_ID_LENGTH},
            {"type": "number", "minimum": -NUMBER_BOUND, "exclusiveMaximum": NUMBER_BOUND},
        ],
    },
    "RecordData": {
        "type": "object",
        "description": "A record's fields; createdAt, updatedAt and version are managed by "
        "dbhandles, and an id here must be the record's own.",
        "propertyNames": {"not": {"enum": sorted(RESERVED_FIELDS - {"id"})}},
        "properties": {"id": ref("RecordIdValue")},
        "additionalProperties": ref("JsonValue"),
    },
    "RecordPatch": {
        "type": "object",
        "description": "Fields of a record; id, createdAt, updatedAt and version are managed by "
        "dbhandles.",
        "propertyNames": {"not": {"enum": sorted(RESERVED_FIELDS)}},
        "additionalProperties": ref("JsonValue"),
    },
    "JsonValue": {
        "description": "Any JSON value, nested at most 64 levels; numbers lie strictly between "
        "-2**63 and 2**63 (64-bit integers).",
        "type": ["string", "boolean", "null", "number", "array", "object"],
        "exclusiveMinimum": -NUMBER_BOUND,
        "exclusiveMaximum": NUMBER_BOUND,
        "items": ref("JsonValue"),
        "additionalProperties": ref("JsonValue"),
    },
    "Path": PATH_SCHEMA,
    "Permissions": _permissions(
        "What a handle allows (docs/security.md): a preset, then these.",
        isolation=list(typing.get_args(Isolation)),
        presets=list(PRESETS),
        owner={"type": ["string", "null"]},
    ),
    # data/grant: what the grantee may do; the owner and the isolation mode are the database's.
    "GrantPermissions": _permissions(
        "What the grantee may do, narrower than the access given; a preset, then these.",
        isolation=["none"],
        owner={"type": "null"},
        presets=[
            name
            for name, fields in PRESET_FIELDS.items()
            if fields.get("owner") is None and fields.get("isolation_mode", "none") == "none"
        ],
    ),
    "Preset": {"anyOf": [{"enum": list(PRESETS)}, {"type": "null"}]},
}


def model_ref(model: type[BaseModel]) -> dict[str, Any]:
    """A reference to a pydantic model's schema (a command's params, an adapter's config)."""
    return {_MODEL_KEY: model}


def params_of(command: str) -> dict[str, Any]:
    """A reference to the params schema of ``command`` (resolved when the schema is generated)."""
    return {_COMMAND_KEY: command}


class _Resolver:
    """Turns ``ref``/``model_ref``/``params_of`` placeholders into ``$ref`` and collects what they
    point at into ``definitions``."""

    def __init__(
        self,
        generator: GenerateJsonSchema,
        definitions: dict[str, Any],
        known: dict[type[BaseModel], dict[str, Any]],
    ) -> None:
        self.generator, self.definitions, self.known = generator, definitions, known
        self.template = generator.ref_template

    def __call__(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self(v) for v in value]
        if not isinstance(value, dict):
            return value
        hidden = (_REF_KEY, _MODEL_KEY, _COMMAND_KEY)
        out = {k: self(v) for k, v in value.items() if k not in hidden}
        if _REF_KEY in value:
            out["$ref"] = self._named(value[_REF_KEY])
        elif _MODEL_KEY in value:
            out.update(self._model(value[_MODEL_KEY]))
        elif _COMMAND_KEY in value:
            from dbhandles.commands.base import COMMANDS

            out.update(self._model(COMMANDS[value[_COMMAND_KEY]].params))
        return out

    def _add(self, name: str, schema: Any) -> None:
        if name in self.definitions:
            return
        self.definitions[name] = {}  # reserved first: the schema may refer to itself
        self.definitions[name] = self(schema)

    def _named(self, name: str) -> str:
        self._add(name, SCHEMAS[name])
        return self.template.format(model=name)

    def _model(self, model: type[BaseModel]) -> dict[str, Any]:
        if model in self.known:
            return self.known[model]
        schema = model.model_json_schema(
            by_alias=self.generator.by_alias, ref_template=self.template,
            schema_generator=type(self.generator),
        )  # fmt: skip
        for name, item in schema.pop("$defs", {}).items():
            self.definitions.setdefault(name, item)
        self._add(model.__name__, schema)
        self.known[model] = {"$ref": self.template.format(model=model.__name__)}
        return self.known[model]


class CommandSchema(GenerateJsonSchema):
    """Pydantic's JSON Schema generator, plus what the placeholders of this module refer to: the
    named schemas of ``SCHEMAS`` and other models (each once, under the definitions, with references
    built like pydantic's own)."""

    def generate(self, schema: CoreSchema, mode: JsonSchemaMode = "validation") -> JsonSchemaValue:
        result = super().generate(schema, mode)
        definitions = dict(result.pop("$defs", {}))
        resolve = _Resolver(self, definitions, {})
        body: JsonSchemaValue = resolve(result)
        for name in list(definitions):
            definitions[name] = resolve(definitions[name])
        if definitions:
            body["$defs"] = definitions
        return body

    def generate_definitions(
        self, inputs: Sequence[tuple[JsonSchemaKeyT, JsonSchemaMode, CoreSchema]]
    ) -> tuple[
        dict[tuple[JsonSchemaKeyT, JsonSchemaMode], JsonSchemaValue], dict[DefsRef, JsonSchemaValue]
    ]:
        mapping, definitions = super().generate_definitions(inputs)
        known: dict[type[BaseModel], dict[str, Any]] = {}
        for (key, mode), value in mapping.items():
            model: object = key
            if mode == "validation" and isinstance(model, type) and issubclass(model, BaseModel):
                known[model] = value
        found: dict[str, Any] = {str(name): value for name, value in definitions.items()}
        resolve = _Resolver(self, found, known)
        new_mapping = {key: resolve(value) for key, value in mapping.items()}
        for name in list(definitions):
            found[name] = resolve(found[name])
        return new_mapping, {DefsRef(k): v for k, v in found.items()}


def _nullable(name: str) -> WithJsonSchema:
    return WithJsonSchema({"anyOf": [ref(name), {"type": "null"}]})


def _wire_name(info: ValidationInfo) -> str:
    return _camel(info.field_name) if info.field_name else "params"


@functools.cache
def _camel(name: str) -> str:
    """``to_camel``, once per field name (validators ask for it on every call)."""
    return to_camel(name)


def _check_filter(value: dict[str, Any] | None, info: ValidationInfo) -> dict[str, Any] | None:
    parse_filter(value, _wire_name(info))
    return value


def _check_order(value: Any, info: ValidationInfo) -> Any:
    field = _wire_name(info)
    check_order_keywords(value, field)
    parse_order_by(value, field)
    return value


def check_order_keywords(value: Any, field: str) -> None:
    """Refuse a sort keyword (``random``, ``rand``, ``shuffle``) in an ``orderBy`` spec: it would
    otherwise read as a field of that name and give id order in silence (issue #14: an unknown
    orderBy keyword is an error).

    Raises:
        InvalidParams: naming ``field``, with the deterministic ``sample``/``seed`` to use instead.
    """
    for item in value if isinstance(value, list) else [value]:
        if not isinstance(item, str):
            continue
        name = item.strip().lstrip("-").replace(":", " ").split(" ")[0]
        if name.lower() in ORDER_KEYWORDS:
            raise InvalidParams(
                f"{field}: {json_text(name, 80)} is not a sort order; for a random selection use sample with a "
                f"seed (a deterministic sample); to sort by a field named {name}, write "
                f'{{"field": "{name}"}}',
                field=field,
            )


def _check_fields(value: Any, info: ValidationInfo) -> Any:
    parse_fields(value, _wire_name(info))
    return value


def _check_path(value: str, info: ValidationInfo) -> str:
    return check_path_text(value, _wire_name(info))


def _check_field_path(value: str, info: ValidationInfo) -> str:
    validate_path(value, _wire_name(info))
    return value


def _check_collection(value: str, info: ValidationInfo) -> str:
    return validate_collection(value, _wire_name(info))


def _check_record_id(value: str, info: ValidationInfo) -> str:
    # U+0000 is judged once the table is known (``documents.check_held_id``).
    return check_record_id(value, _wire_name(info), held=True)


def _record_id_text(value: object, info: ValidationInfo) -> object:
    # A number is its text (documents.id_text) once check_record_id has seen it is a record's number.
    if type(value) in (int, float):
        check_record_id(value, _wire_name(info))
    return id_text(value)


def _new_record_id_text(value: object, info: ValidationInfo) -> object:
    # A new record's numeric id is held to the numbers of a record, as data/import holds it.
    if type(value) in (int, float):
        check_record_id(value, _wire_name(info), new=True)
    return id_text(value)


def _check_actor(value: str, info: ValidationInfo) -> str:
    if not _ACTOR.fullmatch(value):
        field = _wire_name(info)
        raise InvalidParams(
            f"{field}: {json_text(value, 80)} is not a valid actor name (letters, digits, '_', '.', '@', '-')",
            field=field,
        )
    return value


# Each checked type runs the parser's own check when the params are parsed, before the command does
# anything (so data/job-start refuses what its job would), and says in its schema what that accepts.
CollectionName = Annotated[
    str,
    AfterValidator(_check_collection),
    WithJsonSchema({"type": "string", "pattern": COLLECTION_PATTERN}),
]
#: A record id (``documents.check_record_id``): a string, or a number (the key of a table
#: dbhandles did not create), taken as its text (``documents.id_text``).
RecordId = Annotated[
    str,
    BeforeValidator(_record_id_text),
    AfterValidator(_check_record_id),
    like("StoredRecordIdValue"),
]
#: The id of a new record (``data/create``): a ``RecordId`` strictly between -2**63 and 2**63.
NewRecordId = Annotated[
    str,
    BeforeValidator(_new_record_id_text),
    AfterValidator(_check_record_id),
    like("RecordIdValue"),
]
#: A ``dbHandle``: 'default', a handle or an alias (``HandleRegistry.resolve`` refuses any other).
HandleName = Annotated[
    str,
    AfterValidator(lambda name: check_handle_name(name)),
    WithJsonSchema({"type": "string", "pattern": HANDLE_PATTERN}),
]
#: An actor name (``context.ACTOR_PATTERN``).
ActorName = Annotated[
    str, AfterValidator(_check_actor), WithJsonSchema({"type": "string", "pattern": ACTOR_PATTERN})
]
#: A dotted field path (``filters.validate_path``).
FieldPath = Annotated[str, AfterValidator(_check_field_path), like("FieldPath")]
#: ``filter`` params (``filters.parse_filter``; ``None`` and ``{}`` match everything).
OptionalFilterSpec = Annotated[
    dict[str, Any] | None, AfterValidator(_check_filter), _nullable("Filter")
]
#: ``orderBy`` params (``filters.parse_order_by``).
OrderBySpec = Annotated[
    list[Any] | str | dict[str, Any] | None, AfterValidator(_check_order), like("OrderBy")
]
#: ``fields`` params (``filters.parse_fields``).
FieldsSpec = Annotated[list[Any] | str | None, AfterValidator(_check_fields), like("Fields")]
#: A new record's fields: checked by ``documents`` when the record is built.
DataSpec = Annotated[dict[str, Any], like("RecordData")]
#: Fields merged into a record (the id is the command's): checked by ``documents``.
PatchSpec = Annotated[dict[str, Any], like("RecordPatch")]
#: A file path (``dbfiles.check_path_text``), checked before anything touches the disk.
PathText = Annotated[str, AfterValidator(_check_path), like("Path")]


#: The keyword ``SettingMaximum`` leaves in a schema until ``apply_settings`` turns it into a maximum.
SETTING_MAXIMUM = "x-maximum-setting"


@dataclass(frozen=True, slots=True)
class SettingMaximum:
    """An integer whose maximum is a server setting (``Settings.<name>``, e.g. ``max_limit``)."""

    name: str

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        schema[SETTING_MAXIMUM] = self.name
        return schema


def apply_settings(schema: Any, settings: Settings) -> Any:
    """``schema`` with each ``SettingMaximum`` replaced by that setting's value (a copy)."""
    if isinstance(schema, dict):
        out = {k: apply_settings(v, settings) for k, v in schema.items() if k != SETTING_MAXIMUM}
        if SETTING_MAXIMUM in schema:
            out["maximum"] = getattr(settings, schema[SETTING_MAXIMUM])
        return out
    if isinstance(schema, list):
        return [apply_settings(v, settings) for v in schema]
    return schema


#: An ``expectedVersion``: a stored version is an integer from 1 to ``MAX_VERSION`` (2**31 - 1), or 0
#: for a row of a table dbhandles did not create whose version column is NULL (docs/foreign-tables.md),
#: so a number outside 0..MAX_VERSION is ``invalid_params`` before any record is compared with it.
ExpectedVersion = Annotated[int, Field(ge=0, le=MAX_VERSION)]

#: The largest count a param may give (``limit``, ``pageSize``: records or groups), 2**53 - 1, the
#: largest integer every JSON reader keeps exactly. Every integer param has a maximum: a number past
#: it is ``invalid_params`` naming the field when the params are read, so it never reaches a job's
#: process (whose hand-off writes 64-bit integers only) nor an engine's bind.
MAX_COUNT = 2**53 - 1
