"""Events to WebSockets: one bus subscription for the whole server, delivered off the writer's thread.

The bus calls its subscribers in the thread that published, which is the thread of the write that
caused the event. With one bus subscription per WebSocket pattern, every write would pay, before it
returns, for every subscriber: a permission check and a JSON serialisation of the payload each (20
sockets x 100 patterns made a 100 KB ``data/create`` take 2.5 s). So a server subscribes once
(``Fanout``): the writer's thread only appends the event to a queue, and one thread of the fan-out
matches patterns, asks each connection's ``Guard`` whether its actor may see the event, serialises the
payload once per event, and hands the messages to the event loop in one call. A connection gets one
message per event, naming every one of its patterns that matched (``patterns``; ``pattern`` is the
first), and connections with the same matching patterns share one message. A write's latency no longer
depends on how many sockets or subscriptions exist, and an event costs the event loop one send per
socket, not one per subscription.

The fan-out thread's own work per event is kept to one step per socket, not per subscription (it
holds Python's GIL, which every request needs too): which patterns match an event name is worked
out once per name (``_routes``, kept until a subscription changes), and the access generation the
sockets' guards check is read once per batch of events, not once per socket and event (it is a read
of the handle store). With 16 sockets x 100 patterns, matching the 1,600 patterns of every event
and 16 store reads were most of that thread's samples (py-spy, issue 13).

The queue is bounded (``MAX_QUEUED_EVENTS``): when the fan-out falls that far behind, new events are
dropped and every subscribed connection is told (``overflow``), as for a client that reads too slowly.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import orjson

from dbhandles.events import Event, EventBus, Subscription, matcher
from dbhandles.server.ws_frames import EventFrame

if TYPE_CHECKING:
    from dbhandles.server.ws_guard import Guard

__all__ = ["MAX_QUEUED_EVENTS", "Fanout", "Receiver"]

log = logging.getLogger(__name__)

#: Events waiting for the fan-out thread before new ones are dropped.
MAX_QUEUED_EVENTS = 10_000
#: Event names whose receivers are kept (``Fanout._routes``); past it the memo starts again.
_MAX_ROUTES = 4096


class Receiver(Protocol):
    """What the fan-out needs of a connection (``ws.Connection`` is one)."""

    guard: Guard

    def queue_event(self, frame: EventFrame) -> None: ...

    def lost_events(self, count: int) -> None: ...


class _Pattern:
    __slots__ = ("matches", "pattern", "quoted", "receiver")

    def __init__(self, receiver: Receiver, pattern: str) -> None:
        self.receiver, self.pattern, self.matches = receiver, pattern, matcher(pattern)
        self.quoted = orjson.dumps(pattern).decode()


class Fanout:
    """Delivers the bus's events to WebSocket connections from a thread of its own.

    The bus has one subscription of the fan-out while any WebSocket subscription exists, none
    otherwise (writes then pay nothing for events at all).

    Args:
        bus: the service's event bus (subscribed to once, on the first ``add``).
        loop: the event loop of the connections (messages are queued there).
    """

    def __init__(self, bus: EventBus, loop: asyncio.AbstractEventLoop) -> None:
        self._bus = bus
        self._loop = loop
        self._cond = threading.Condition()
        self._queue: deque[Event] = deque()
        self._lost = 0
        self._patterns: tuple[_Pattern, ...] = ()
        #: Per event name, each receiver whose patterns match it and their quoted names, for
        #: ``_patterns`` as it is (cleared when it changes; only touched by the fan-out thread).
        self._routes: dict[str, list[tuple[Receiver, tuple[str, ...]]]] = {}
        self._routes_for: tuple[_Pattern, ...] = ()
        self._subscription: Subscription | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        #: The threads events were delivered from (for tests: never the writer's).
        self.delivered_by: set[str] = set()

    # -- subscriptions (on the event loop) -----------------------------------------------------------

    def add(self, receiver: Receiver, pattern: str) -> object:
        """Deliver events matching ``pattern`` to ``receiver``; returns the key for ``remove``."""
        entry = _Pattern(receiver, pattern)
        with self._cond:
            self._patterns = (*self._patterns, entry)
            if self._subscription is None and not self._closed:
                self._subscription = self._bus.subscribe("*", self._publish)
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(
                    target=self._run, name="dbhandles-events", daemon=True
                )
                self._thread.start()
        return entry

    def remove(self, key: object) -> None:
        """Stop a delivery ``add`` started; with the last one, the bus is left alone again."""
        subscription = None
        with self._cond:
            self._patterns = tuple(p for p in self._patterns if p is not key)
            if not self._patterns:
                subscription, self._subscription = self._subscription, None
        if subscription is not None:
            subscription.close()

    @property
    def pattern_count(self) -> int:
        return len(self._patterns)

    # -- the writer's side: O(1) -------------------------------------------------------------------

    def _publish(self, event: Event) -> None:
        with self._cond:
            if len(self._queue) >= MAX_QUEUED_EVENTS:
                self._lost += 1
                return
            self._queue.append(event)
            self._cond.notify()

    # -- the fan-out thread --------------------------------------------------------------------------

    def _run(self) -> None:
        self.delivered_by.add(threading.current_thread().name)
        while True:
            with self._cond:
                while not self._queue and not self._lost and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                events = list(self._queue)
                self._queue.clear()
                lost, self._lost = self._lost, 0
                patterns = self._patterns
            batch: list[tuple[Receiver, EventFrame]] = []
            if patterns is not self._routes_for:
                self._routes, self._routes_for = {}, patterns
            # Read after the events were published: a change of access made before any of them
            # is seen (ws_guard.py); one read for the batch.
            generation = (
                patterns[0].receiver.guard.generation_now() if patterns and events else None
            )
            for event in events:
                try:
                    self._match(event, patterns, batch, generation)
                except Exception:
                    log.exception("delivering event %s to WebSockets failed", event.name)
            if lost:
                receivers = list({id(p.receiver): p.receiver for p in patterns}.values())
                self._hand_over(functools.partial(_tell_lost, receivers, lost))
            if batch:
                self._hand_over(functools.partial(_queue_all, batch))

    def _match(
        self,
        event: Event,
        patterns: tuple[_Pattern, ...],
        batch: list[tuple[Receiver, EventFrame]],
        generation: tuple[int, str | None] | None = None,
    ) -> None:
        routes = self._routes.get(event.name)
        if routes is None:
            if len(self._routes) >= _MAX_ROUTES:
                self._routes.clear()
            routes = self._routes[event.name] = _routes(event.name, patterns)
        matched = [(receiver, quoted) for receiver, quoted in routes
                   if receiver.guard.may_see(event, generation)]  # fmt: skip
        if not matched:
            return
        # Serialised once per event, whatever the subscribers; one message per set of patterns,
        # shared (with its frame: ws_frames.py) by every connection with those patterns.
        payload = orjson.dumps(event.payload)
        name = orjson.dumps(event.name)
        frames: dict[tuple[str, ...], EventFrame] = {}
        for receiver, quoted in matched:
            frame = frames.get(quoted)
            if frame is None:
                frame = frames[quoted] = EventFrame(
                    b'{"type":"event","event":%s,"pattern":%s,"patterns":[%s],"payload":%s}'
                    % (name, quoted[0].encode(), ",".join(quoted).encode(), payload)
                )
            batch.append((receiver, frame))

    def _hand_over(self, fn: Callable[[], object]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: the server is stopping
            self._loop.call_soon_threadsafe(fn)

    def close(self) -> None:
        """Stop delivering (the server is shutting down); idempotent."""
        with self._cond:
            self._closed = True
            subscription, self._subscription = self._subscription, None
            self._queue.clear()
            self._cond.notify_all()
        if subscription is not None:
            subscription.close()


def _routes(name: str, patterns: tuple[_Pattern, ...]) -> list[tuple[Receiver, tuple[str, ...]]]:
    """Each receiver with a pattern matching event ``name``, and its matching patterns (quoted),
    in subscription order."""
    found: dict[int, tuple[Receiver, list[str]]] = {}
    for entry in patterns:
        if entry.matches(name):
            found.setdefault(id(entry.receiver), (entry.receiver, []))[1].append(entry.quoted)
    return [(receiver, tuple(quoted)) for receiver, quoted in found.values()]


def _tell_lost(receivers: list[Receiver], count: int) -> None:
    """On the event loop: ``count`` events were dropped before the fan-out saw them."""
    for receiver in receivers:
        receiver.lost_events(count)


def _queue_all(batch: list[tuple[Receiver, EventFrame]]) -> None:
    """On the event loop: hand each message to its connection's outbox."""
    for receiver, text in batch:
        receiver.queue_event(text)
