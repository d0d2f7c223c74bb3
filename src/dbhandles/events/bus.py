"""In-process event bus: writes publish ``data:<collection>:<op>``; subscribers listen by pattern.

Patterns are shell-style over the whole name: ``data:users:*`` (every op on users), ``data:*:created``,
``data:*`` (everything). A failing subscriber is logged and never fails the write that caused the event.
"""

from __future__ import annotations

import fnmatch
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dbhandles.byte_cache import byte_memo, deep_sizeof

__all__ = ["Event", "EventBus", "Subscription", "event_name", "matcher"]

log = logging.getLogger(__name__)

Callback = Callable[["Event"], None]
#: ``sequencer(event, deliver)``: see ``EventBus.set_sequencer``.
Sequencer = Callable[["Event", Callback], None]


@dataclass(frozen=True, slots=True)
class Event:
    """One published event; ``payload`` always names the ``dbHandle``."""

    name: str
    payload: dict[str, Any]

    def to_wire(self) -> dict[str, Any]:
        return {"event": self.name, "payload": self.payload}


def event_name(collection: str, op: str) -> str:
    """``data:<collection>:<op>``; the global clear is ``data:*:cleared``."""
    return f"data:{collection}:{op}"


def _pattern_bytes(key: object, compiled: object) -> int:
    # The compiled program's parts are not all visible to ``sys.getsizeof``: add its text twice.
    return deep_sizeof((key, compiled)) + 2 * deep_sizeof(getattr(compiled, "pattern", ""))


#: Bytes of compiled subscription patterns kept (a pattern is the subscriber's text).
PATTERN_CACHE_BYTES = 4 << 20


@byte_memo(PATTERN_CACHE_BYTES, _pattern_bytes)
def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(pattern))


def matcher(pattern: str) -> Callable[[str], bool]:
    """Whether an event name matches ``pattern`` (shell-style over the whole name, as ``subscribe``)."""
    regex = _compile(pattern)
    return lambda name: regex.match(name) is not None


class Subscription:
    """Returned by ``subscribe``; call ``close()`` (or use as a context manager) to stop listening."""

    def __init__(self, bus: EventBus, pattern: str, callback: Callback) -> None:
        self.bus, self.pattern, self.callback = bus, pattern, callback
        self._regex = _compile(pattern)

    def matches(self, name: str) -> bool:
        return self._regex.match(name) is not None

    def close(self) -> None:
        self.bus._remove(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventBus:
    """Thread-safe publish/subscribe; delivery is synchronous, in the publishing thread, after commit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: tuple[Subscription, ...] = ()
        self._bridges: tuple[Callable[[Event], None], ...] = ()
        self._watchers: tuple[Callable[[], None], ...] = ()
        self._sequencer: Sequencer | None = None

    def subscribe(self, pattern: str, callback: Callback) -> Subscription:
        sub = Subscription(self, pattern, callback)
        with self._lock:
            self._subs = (*self._subs, sub)
            watchers = self._watchers
        for watcher in watchers:
            try:
                watcher()
            except Exception:
                log.exception("event bus watcher failed on subscribe(%r)", pattern)
        return sub

    def on_subscribe(self, watcher: Callable[[], None]) -> None:
        """Call ``watcher()`` on every ``subscribe``, before it returns (a bridge that receives from
        other processes starts listening there, so nobody pays for it until someone listens)."""
        with self._lock:
            self._watchers = (*self._watchers, watcher)

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            self._subs = tuple(s for s in self._subs if s is not sub)

    def add_bridge(self, forward: Callable[[Event], None]) -> None:
        """Also hand every locally published event to ``forward`` (e.g. to other processes)."""
        with self._lock:
            self._bridges = (*self._bridges, forward)

    def set_sequencer(self, sequencer: Sequencer) -> None:
        """Let ``sequencer(event, deliver)`` run the local delivery of each locally published event
        (it must call ``deliver(event)`` once): a log shared by processes places the event in its
        order first, and delivers what other processes logged before it."""
        with self._lock:
            self._sequencer = sequencer

    def publish(self, name: str, payload: dict[str, Any], *, forward: bool = True) -> None:
        """Deliver to every matching subscriber; exceptions are logged, never raised."""
        event = Event(name, payload)
        sequencer = self._sequencer if forward else None
        if sequencer is None:
            self._deliver(event)
        else:
            delivered = False

            def deliver(event: Event) -> None:
                nonlocal delivered
                delivered = True
                self._deliver(event)

            try:
                sequencer(event, deliver)
            except Exception:
                log.exception("event sequencer failed on %s", name)
            if not delivered:
                self._deliver(event)
        if forward:
            for bridge in self._bridges:
                try:
                    bridge(event)
                except Exception:
                    log.exception("event bridge failed on %s", name)

    def _deliver(self, event: Event) -> None:
        for sub in self._subs:
            if sub.matches(event.name):
                try:
                    sub.callback(event)
                except Exception:
                    log.exception("event subscriber for %r failed on %s", sub.pattern, event.name)
