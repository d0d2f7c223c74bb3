"""A quicker door for the params most calls send, and models built without pydantic's generic loops.

``parse_simple(model, raw)`` takes params whose every value is a string (``{"dbHandle": ...,
"collection": ..., "id": ...}``: a data/read), a ``bool``, an ``int`` of an integer field, or the
object of a ``filter`` (a data/list's ``{"filter": {...}, "limit": 100, "skipCount": true}``), and
runs on each the very check pydantic would run on it (``filters.validate_collection``,
``documents.check_record_id``, ``handle_entry.check_handle_name``, the field's bounds,
``filters.parse_filter``); it answers ``None``, and the caller validates with pydantic as before,
whenever anything is not that simple: a key that is no field's alias, a value not of its field's
one type (``None`` and ``5.0`` included), a field of a kind this module does not know, a model
with validators of its own, or a check that fails. So every error a
caller sees still comes from pydantic (the same code and message), and what comes out is the model
pydantic would build: the same ``__dict__`` (defaults included, in declaration order) and the same
``model_fields_set`` (tests/test_fast_params.py checks both against ``model_validate``).

``parsed_filter(spec)`` is ``parse_filter(spec)`` of a ``filter`` this door has just parsed on
this thread (a data/list's), answered without parsing it again.

``build(model, values)`` is ``model.model_construct(**values)`` for the result of a hot command,
at a quarter of the cost: ``values`` are already checked (and for a read, fresh for this call).
"""

from __future__ import annotations

import functools
import threading
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from annotated_types import Ge, Le
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from dbhandles.commands.base import SessionId
from dbhandles.commands.grammar import (
    CollectionName,
    HandleName,
    OptionalFilterSpec,
    RecordId,
    SettingMaximum,
)
from dbhandles.context import is_session_id
from dbhandles.documents import MAX_TABLE_ID_LENGTH, check_record_id
from dbhandles.filters import FilterNode, parse_filter, validate_collection
from dbhandles.handle_entry import check_handle_name

__all__ = ["build", "parse_filter_once", "parse_simple"]

M = TypeVar("M", bound=BaseModel)


def _text(value: str) -> str:
    return value


def _session_id(value: str) -> str:
    if not is_session_id(value):  # the check of ``base.SessionId``
        raise ValueError(value)
    return value


def _remembered(check: Callable[[str], str]) -> Callable[[str], str]:
    """``check``, remembering the values it accepted (a few hundred: handle and collection names
    repeat from call to call; a check is a pure function of the string, and a refusal is never
    remembered, so it is raised again, by pydantic, every time)."""
    accepted: dict[str, str] = {}

    def checked(value: str) -> str:
        found = accepted.get(value)
        if found is None:
            found = check(value)
            if len(accepted) >= 512:
                accepted.clear()
            accepted[value] = found
        return found

    return checked


_HANDLE = _remembered(check_handle_name)


def _record_id(value: str) -> str:
    """``check_record_id`` of a string, its common case decided here: a non-empty ASCII id of at
    most ``MAX_TABLE_ID_LENGTH`` characters without U+0000 is valid as it is (every other
    string, valid or not, goes to ``check_record_id``: the one rule, U+0000 left to the handler's
    ``documents.check_held_id`` as ``grammar.RecordId`` leaves it)."""
    if 0 < len(value) <= MAX_TABLE_ID_LENGTH and value.isascii() and "\x00" not in value:
        return value
    return check_record_id(value, held=True)


#: Field types whose string values this module checks, with the check their validators run (the
#: field's wire name only matters for the message of a failure, which pydantic then gives).
_CHECKS: dict[object, Callable[[str], str]] = {
    str: _text,
    str | None: _text,
    CollectionName: validate_collection,  # remembers the names it accepted itself
    CollectionName | None: validate_collection,
    RecordId: _record_id,
    HandleName: _HANDLE,
    HandleName | None: _HANDLE,
    SessionId | None: _session_id,
}
#: Default values shared safely between models (immutable).
_SHAREABLE = (type(None), bool, int, float, str)
#: The only validator a params model may have to take this door (``JsonModel``'s, which changes
#: nothing but integral floats, and no value here is a number).
_KNOWN_VALIDATORS = {"_integral_numbers"}


#: The last filter ``_filter`` accepted on this thread: ``(the copy it returned, its tree)``.
_PARSED = threading.local()


def _filter(value: dict[str, Any]) -> dict[str, Any]:
    """``OptionalFilterSpec``'s checks on an object: text keys (a strict ``dict[str, Any]``) and a
    filter ``parse_filter`` takes; a copy, as pydantic makes one. The tree is kept for the handler
    (``parse_filter_once``)."""
    for key in value:
        if type(key) is not str:
            raise TypeError(key)
    node = parse_filter(value)
    copy = dict(value)
    _PARSED.last = (copy, node)
    return copy


def parse_filter_once(spec: dict[str, Any] | None) -> FilterNode | None:
    """``filters.parse_filter(spec)``: the tree ``parse_simple`` made of this very object (the copy
    it put in the params, still held here, so no other object can be taken for it) when it was
    the last filter this thread parsed, else parsed now. A tree is handed out once, then
    forgotten: a second ask parses again.

    Raises:
        InvalidFilter: as ``parse_filter`` (never for a filter this door accepted).
    """
    last = getattr(_PARSED, "last", None)
    if last is not None and last[0] is spec:
        _PARSED.last = None
        node: FilterNode | None = last[1]
        return node
    return parse_filter(spec)


def _same(value: Any) -> Any:
    return value


def _bounds(annotation: object) -> tuple[int | None, int | None] | None:
    """``(minimum, maximum)`` of an ``int`` field written ``int`` or ``Annotated[int, ...]`` with
    ``Ge``/``Le`` bounds (a ``Field``'s too) and ``SettingMaximum`` (a schema note: the handler
    checks the setting), maybe ``| None``; ``None`` for any other type."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        kinds = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _bounds(kinds[0]) if len(kinds) == 1 else None
    if annotation is int:
        return None, None
    if origin is not Annotated:
        return None
    base, *notes = typing.get_args(annotation)
    if base is not int:
        return None
    low = high = None
    while notes:
        note = notes.pop()
        if isinstance(note, FieldInfo):
            notes.extend(note.metadata)
        elif isinstance(note, Ge) and type(note.ge) is int:
            low = note.ge
        elif isinstance(note, Le) and type(note.le) is int:
            high = note.le
        elif not isinstance(note, SettingMaximum):
            return None  # another constraint (or a bound that is no integer): not ours
    return low, high


def _integer(low: int | None, high: int | None) -> Callable[[int], int]:
    def checked(value: int) -> int:
        if (low is not None and value < low) or (high is not None and value > high):
            raise ValueError(value)
        return value

    return checked


def _check_of(declared: object) -> tuple[Callable[[Any], Any], type] | None:
    """The check of a field of this type and the one type its values must have (``type(value)
    is``: no subclass, so ``True`` is no ``int``); ``None`` for a type this module does not know."""
    try:
        text = _CHECKS.get(declared)
    except TypeError:  # an unhashable type argument (a Literal of a list)
        text = None
    if text is not None:
        return text, str
    if declared is bool:
        return _same, bool
    if declared == OptionalFilterSpec:
        return _filter, dict
    bounds = _bounds(declared)
    return None if bounds is None else (_integer(*bounds), int)


@dataclass(frozen=True, slots=True)
class _Plan:
    #: alias -> (field name, check, the type of its values)
    fields: dict[str, tuple[str, Callable[[Any], Any], type]]
    #: the names of the required fields
    required: frozenset[str]
    #: every field's default in declaration order (required fields: filled by the caller)
    template: dict[str, Any]


def _declared(annotation: Any, metadata: list[Any]) -> object:
    """A field's type as it was written (pydantic moves an ``Annotated``'s metadata apart)."""
    return Annotated[(annotation, *metadata)] if metadata else annotation


@functools.cache
def _template(model: type[BaseModel]) -> dict[str, Any] | None:
    """Every field's default in declaration order (``None`` for a required one), or ``None`` when
    ``model`` is not built by setting its ``__dict__`` (private attributes, a post-init hook, a
    default factory or a mutable default)."""
    if model.__private_attributes__ or model.__pydantic_post_init__ is not None:
        return None
    template: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if info.is_required():
            template[name] = None
        elif info.default_factory is not None or not isinstance(info.default, _SHAREABLE):
            return None
        else:
            template[name] = info.default
    return template


@functools.cache
def _plan(model: type[BaseModel]) -> _Plan | None:
    """How ``parse_simple`` builds ``model``, ``None`` when it cannot (see the module docstring)."""
    decorators = model.__pydantic_decorators__
    template = _template(model)
    if (
        template is None
        or set(decorators.model_validators) - _KNOWN_VALIDATORS
        or decorators.field_validators
        or decorators.validators
        or decorators.root_validators
        or model.model_config.get("extra") != "forbid"
    ):
        return None
    fields: dict[str, tuple[str, Callable[[Any], Any], type]] = {}
    required = frozenset(name for name, info in model.model_fields.items() if info.is_required())
    for name, info in model.model_fields.items():
        found = _check_of(_declared(info.annotation, info.metadata))
        if found is not None:
            fields[info.alias or name] = (name, found[0], found[1])
        elif info.is_required():
            return None  # a required field of another kind: never simple
    return _Plan(fields, required, template)


def parse_simple(model: type[M], raw: Mapping[str, Any]) -> M | None:
    """``model.model_validate(raw)`` when every value of ``raw`` is of the one type of a field this
    module checks; ``None`` otherwise (and whenever a check fails): validate with pydantic then."""
    plan = _plan(model)
    if plan is None:
        return None
    values = plan.template.copy()
    fields = plan.fields
    given: set[str] = set()
    for key, value in raw.items():
        spec = fields.get(key)
        if spec is None or type(value) is not spec[2]:
            return None
        name = spec[0]
        try:
            values[name] = spec[1](value)
        except Exception:
            return None  # pydantic says what is wrong, as it always did
        given.add(name)
    if not plan.required <= given:
        return None
    return _made(model, values, given)


def build(model: type[M], values: dict[str, Any]) -> M:
    """``model.model_construct(**values)``: ``values`` (every required field among them) are the fields set, the other fields get their defaults."""
    template = _template(model)
    if template is None:
        return model.model_construct(**values)
    full = dict(template)  # declaration order, as pydantic keeps it
    full.update(values)
    return _made(model, full, set(values))


# The slots ``model_construct`` fills, set through their descriptors (params models are frozen, so
# ``setattr`` would refuse; ``object.__setattr__`` costs a name lookup each).
_SET_DICT = BaseModel.__dict__["__dict__"].__set__
_SET_FIELDS_SET = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_SET_EXTRA = BaseModel.__dict__["__pydantic_extra__"].__set__
_SET_PRIVATE = BaseModel.__dict__["__pydantic_private__"].__set__


def _made(model: type[M], values: dict[str, Any], fields_set: set[str]) -> M:
    made = object.__new__(model)
    _SET_DICT(made, values)
    _SET_FIELDS_SET(made, fields_set)
    _SET_EXTRA(made, None)
    _SET_PRIVATE(made, None)
    return made
