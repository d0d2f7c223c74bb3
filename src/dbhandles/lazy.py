"""Values made on first use: package attributes (PEP 562) and mappings of built values, so importing
a module stays cheap."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

__all__ = ["LazyMapping", "lazy_attributes"]

K = TypeVar("K")
V = TypeVar("V")


def lazy_attributes(
    package: str, names: Mapping[str, str], namespace: dict[str, Any]
) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``names[name]`` (a module path) on first use of ``name``
    and keeps the value in ``namespace`` (the package's globals), so the next use is a plain lookup."""

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__


class LazyMapping(Mapping[K, V]):
    """A read-only mapping whose keys are known at once and whose values are made by ``make(key)``
    on their first lookup, then kept.

    For module-level tables of values that are costly to make (a pydantic model's instance builds
    the model's validator): a process that never looks one up never makes it, and listing the keys
    (``list(m)``, ``key in m``, ``len(m)``) makes nothing. ``make`` must return the same value for a
    key every time (the values are shared); two threads looking up a new key at once may both call
    it, and both get the first value kept.
    """

    __slots__ = ("_keys", "_made", "_make")

    def __init__(self, keys: Iterable[K], make: Callable[[K], V]) -> None:
        self._keys = tuple(dict.fromkeys(keys))
        self._make = make
        self._made: dict[K, V] = {}

    def __getitem__(self, key: K) -> V:
        try:
            return self._made[key]
        except KeyError:
            if key not in self._keys:
                raise
        return self._made.setdefault(key, self._make(key))

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __iter__(self) -> Iterator[K]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self._keys)!r})"
