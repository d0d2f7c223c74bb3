"""Caches bounded by the bytes they keep alive (``deep_sizeof``), not by a count of entries."""

from __future__ import annotations

import dataclasses
import functools
import sys
import threading
from collections.abc import Callable, Hashable
from typing import Generic, ParamSpec, TypeVar

__all__ = ["NAME_CACHE_BYTES", "ByteCache", "ByteMemo", "byte_memo", "deep_sizeof"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
P = ParamSpec("P")

#: Bytes each cache of accepted names and paths (``filters.validate_path``, the registry's checked
#: names, the accepted sessions) keeps: a few thousand typical entries, never one actor's stream
#: of long distinct ones.
NAME_CACHE_BYTES = 1 << 20


_LEAVES = frozenset({str, bytes, int, float, bool, type(None)})


def deep_sizeof(value: object) -> int:
    """Bytes held by ``value`` and everything it reaches through tuples, lists, sets, dicts and
    dataclass fields (``sys.getsizeof`` of each object, each counted once).

    Strings, numbers and other leaves count their own size; objects of other classes count only
    themselves. Iterative, so a deeply nested value cannot exhaust the recursion limit.
    """
    total = 0
    seen: set[int] = set()
    stack: list[object] = [value]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        total += sys.getsizeof(item)
        if type(item) in _LEAVES:  # most of a big filter: skip the checks below
            continue
        if isinstance(item, tuple | list | set | frozenset):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            stack.extend(getattr(item, field.name) for field in dataclasses.fields(item))
    return total


class ByteCache(Generic[K, V]):
    """A map from keys to values holding at most ``max_bytes`` bytes (the ``size`` given to ``put``).

    Entries leave oldest first (insertion order) when a new one would not fit. An entry larger than
    ``max_bytes`` is not kept, unless ``keep_oversized``: then it replaces every other entry and is
    the only one kept (until the next ``put``), for callers that look the same entry up many times in
    a row (a filter's plan, once per record) and would otherwise rebuild it each time. So the cache
    holds at most ``max(max_bytes, the size of the last entry put)`` bytes.

    ``get`` takes no lock (one dict lookup, safe under the GIL); ``put`` and ``clear`` take one.
    """

    def __init__(self, max_bytes: int, *, keep_oversized: bool = False) -> None:
        """Args:
        max_bytes: the byte budget (> 0).
        keep_oversized: keep an entry larger than the budget alone (see the class docstring).

        Raises:
            ValueError: ``max_bytes`` is not positive.
        """
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, not {max_bytes}")
        self.max_bytes = max_bytes
        self.keep_oversized = keep_oversized
        self._values: dict[K, V] = {}
        self._sizes: dict[K, int] = {}
        self._bytes = 0
        self._lock = threading.Lock()
        #: ``dict.get`` of the values itself: the hot path costs one C call.
        self.get = self._values.get

    @property
    def nbytes(self) -> int:
        """The bytes the entries hold (sum of the sizes they were put with)."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def discard(self, key: K) -> None:
        """Forget ``key``'s entry, if there is one."""
        with self._lock:
            self._drop(key)

    def put(self, key: K, value: V, size: int) -> None:
        """Keep ``value`` under ``key``; ``size`` is what it keeps alive in bytes (``deep_sizeof`` of
        the key and the value, or more), evicting the oldest entries until it fits."""
        with self._lock:
            self._drop(key)
            if size > self.max_bytes:
                if not self.keep_oversized:
                    return
                self._values.clear()
                self._sizes.clear()
                self._bytes = 0
            while self._values and self._bytes + size > self.max_bytes:
                self._drop(next(iter(self._values)))
            self._values[key] = value
            self._sizes[key] = size
            self._bytes += size

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._values.clear()
            self._sizes.clear()
            self._bytes = 0

    def _drop(self, key: K) -> None:
        self._values.pop(key, None)
        self._bytes -= self._sizes.pop(key, 0)


_MISSING = object()


class ByteMemo(Generic[P, V]):
    """``func`` with its answers kept in a ``ByteCache`` (``byte_memo``); an exception is never
    kept. ``cache`` is the cache (``cache.nbytes``: what it holds), ``cache_clear`` empties it."""

    def __init__(
        self, func: Callable[P, V], max_bytes: int, size: Callable[[object, object], int]
    ) -> None:
        self.func = func
        self.size = size
        self.cache: ByteCache[Hashable, V] = ByteCache(max_bytes)
        functools.update_wrapper(self, func)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> V:
        key: Hashable = (args, tuple(sorted(kwargs.items()))) if kwargs else args
        found = self.cache.get(key, _MISSING)
        if found is _MISSING:
            value = self.func(*args, **kwargs)
            self.cache.put(key, value, self.size(key, value))
            return value
        return found  # type: ignore[return-value]

    def cache_clear(self) -> None:
        """Forget every answer."""
        self.cache.clear()


def _keeps(key: object, value: object) -> int:
    return deep_sizeof((key, value))


def byte_memo(
    max_bytes: int, size: Callable[[object, object], int] | None = None
) -> Callable[[Callable[P, V]], ByteMemo[P, V]]:
    """Like ``functools.lru_cache`` for a pure function of hashable arguments, bounded by the bytes
    its answers keep alive instead of by their count: ``size(key, answer)`` (by default
    ``deep_sizeof`` of both; give it for an answer whose memory ``sys.getsizeof`` cannot see, such
    as a compiled pattern). Entries leave oldest first; one larger than ``max_bytes`` is not kept."""

    def wrap(func: Callable[P, V]) -> ByteMemo[P, V]:
        return ByteMemo(func, max_bytes, size or _keeps)

    return wrap
