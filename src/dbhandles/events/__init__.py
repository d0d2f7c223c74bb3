"""Events: the in-process bus (``bus``) and the bridges that carry events between processes
(``sqlite_log``: the event log of an SQLite home; ``postgres``: LISTEN/NOTIFY on a shared PostgreSQL
default, imported only when configured)."""

from __future__ import annotations

from dbhandles.events.bus import Event, EventBus, Subscription, event_name, matcher

__all__ = ["Event", "EventBus", "Subscription", "event_name", "matcher"]
