"""Events across processes through PostgreSQL ``LISTEN``/``NOTIFY``.

Every process on one PostgreSQL default runs a ``PostgresEventBridge``: ``forward`` (an ``EventBus``
bridge) NOTIFYs each locally published event on a channel named after the schema, and a background
thread LISTENs on it and re-publishes what other processes sent with ``forward=False``, so nothing
echoes back. Each process has an origin id and skips its own notifications.

A NOTIFY payload must stay under 8000 bytes. A larger event (a big record) is sent by reference: its
body goes into the ``_dbh_events`` table and the notification carries only the row id; receivers read
the body from there. Rows older than ten minutes are deleted as new ones arrive.

Delivery is as good as the listening connection: events published while it is down (a server
restart, a network cut) are not replayed; the listener reconnects with a growing pause.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson
import psycopg
from psycopg import sql

from dbhandles.adapters.postgres_config import PostgresConfig, connection_params
from dbhandles.adapters.postgres_errors import translating
from dbhandles.adapters.postgres_schema import advisory_key
from dbhandles.errors import DbHandlesError
from dbhandles.events import Event, EventBus

__all__ = ["MAX_NOTIFY_BYTES", "RESUMED", "Listener", "PostgresEventBridge", "channel_for"]

log = logging.getLogger(__name__)

#: Bodies at least this long go by reference (PostgreSQL's limit is 8000 bytes, less some headroom).
MAX_NOTIFY_BYTES = 7900
_KEEP = "10 minutes"


#: Published on the local bus when the listener listens again after losing PostgreSQL: events other
#: processes sent meanwhile were not received (payload: ``mayHaveMissed``, ``downSeconds``).
RESUMED = "events:resumed"


def channel_for(schema: str) -> str:
    """The channel of a deployment: one per schema, so deployments sharing a database stay apart."""
    return f"dbhandles_events_{schema}"


class Listener:
    """A thread LISTENing on one channel on a connection of its own, reconnecting with a growing pause.

    ``on_message(payload)`` runs in the thread for each notification. ``on_state(live)`` runs when the
    subscription starts (``True``) and when it is lost (``False``): notifications sent in between are
    missed, so a cache kept fresh by them must not be trusted while it is not live.
    """

    def __init__(
        self,
        conninfo: str,
        channel: str,
        on_message: Callable[[str], None],
        *,
        on_state: Callable[[bool], None] | None = None,
        where: str = "",
        name: str = "dbhandles-pg-listen",
    ) -> None:
        self._conninfo = conninfo
        self.channel = channel
        self._on_message = on_message
        self._on_state = on_state or (lambda live: None)
        self._where = where
        self._name = name
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 10.0) -> None:
        """Start the thread; return once it listens (or after ``timeout`` if the server is down)."""
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        self._ready.wait(timeout)

    def close(self) -> None:
        """Stop listening; idempotent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        pause = 0.1
        while not self._stop.is_set():
            live = False
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                    live = True
                    self._on_state(True)
                    self._ready.set()
                    pause = 0.1
                    while not self._stop.is_set():
                        # Collect first: the generator holds the connection's lock while it runs.
                        received = [n.payload for n in conn.notifies(timeout=0.25)]
                        for payload in received:
                            self._on_message(payload)
            except psycopg.Error as exc:
                if self._stop.is_set():
                    break
                log.warning("listener on %s lost PostgreSQL at %s (%s); reconnecting",
                            self.channel, self._where, exc)  # fmt: skip
                self._stop.wait(pause)
                pause = min(pause * 2, 5.0)
            finally:
                if live:
                    self._on_state(False)
                self._ready.set()  # never leave start() waiting on a server that is down


class PostgresEventBridge:
    """Forward a bus's events to other processes and publish theirs on it.

    Args:
        config: the shared default database (its schema names the channel).
        bus: the local event bus.
        origin: this process's id (random by default).
    """

    def __init__(self, config: PostgresConfig, bus: EventBus, *, origin: str | None = None) -> None:
        self.bus = bus
        self.origin = origin or uuid.uuid4().hex
        self.schema = config.schema_name
        self.channel = channel_for(self.schema)
        self._conninfo, self._where, self._secret = connection_params(config)
        self._events = sql.SQL("{}._dbh_events").format(sql.Identifier(self.schema))
        self._send_lock = threading.Lock()
        self._sender: psycopg.Connection[Any] | None = None
        self._closed = False
        self._listener = Listener(
            self._conninfo,
            self.channel,
            self._receive,
            where=self._where,
            name="dbhandles-pg-events",
            on_state=self._on_state,
        )
        #: When the listener lost its connection (monotonic seconds), until it listens again.
        self._lost_at: float | None = None
        self._listened = False

    def _translating(self) -> Any:
        return translating(where=self._where, secret=self._secret)

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> PostgresEventBridge:
        """Create the reference table if needed, start listening, and hook into the bus.

        Returns once the listener is subscribed, so events published after this are all seen.
        """
        with self._send_lock:
            conn = self._sending()
            with self._translating(), conn.transaction():
                conn.execute(
                    "SELECT pg_advisory_xact_lock(%s)", (advisory_key(self.schema, "_dbh_events"),)
                )
                conn.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
                )
                conn.execute(
                    sql.SQL(
                        "CREATE TABLE IF NOT EXISTS {} (id bigserial PRIMARY KEY, "
                        "at timestamptz NOT NULL DEFAULT now(), body text NOT NULL)"
                    ).format(self._events)
                )
        self._listener.start(timeout)
        self.bus.add_bridge(self.forward)
        return self

    def close(self) -> None:
        """Stop listening and close both connections; idempotent."""
        self._closed = True
        self._listener.close()
        with self._send_lock:
            sender, self._sender = self._sender, None
        if sender is not None:
            sender.close()

    def _on_state(self, live: bool) -> None:
        if not live:
            self._lost_at = time.monotonic()
            return
        if self._listened and self._lost_at is not None:
            # Events other processes published while nobody listened are not replayed: say so,
            # on the local bus, so subscribers (a dashboard, a cache) can reload what they show.
            down = round(time.monotonic() - self._lost_at, 3)
            self.bus.publish(
                RESUMED, {"dbHandle": None, "mayHaveMissed": True, "downSeconds": down},
                forward=False,
            )  # fmt: skip
        self._listened, self._lost_at = True, None

    # -- sending -----------------------------------------------------------------------------------

    def _sending(self) -> psycopg.Connection[Any]:
        if self._sender is None or self._sender.closed or self._sender.broken:
            with self._translating():
                self._sender = psycopg.connect(self._conninfo, autocommit=True)
        return self._sender

    def forward(self, event: Event) -> None:
        """Notify other processes of a locally published event (the bus logs any failure)."""
        if self._closed:
            return
        body = orjson.dumps({"o": self.origin, "n": event.name, "p": event.payload})
        try:
            self._notify(body)
        except DbHandlesError as exc:
            if not isinstance(exc.__cause__, psycopg.OperationalError):
                raise
            # The sending connection died (a restart, pg_terminate_backend): nothing was sent on
            # it, so send once more on a new one.
            with self._send_lock:
                self._sender = None
            self._notify(body)

    def _notify(self, body: bytes) -> None:
        with self._send_lock, self._translating():
            conn = self._sending()
            if len(body) >= MAX_NOTIFY_BYTES:
                with conn.transaction():
                    row = conn.execute(
                        sql.SQL("INSERT INTO {} (body) VALUES (%s) RETURNING id").format(
                            self._events
                        ),
                        (body.decode(),),
                    ).fetchone()
                    conn.execute(
                        sql.SQL("DELETE FROM {} WHERE at < now() - interval {}").format(
                            self._events, sql.Literal(_KEEP)
                        )
                    )
                assert row is not None
                body = orjson.dumps({"o": self.origin, "r": row[0]})
            conn.execute("SELECT pg_notify(%s, %s)", (self.channel, body.decode()))

    # -- receiving ---------------------------------------------------------------------------------

    def _receive(self, payload: str) -> None:
        try:
            message = orjson.loads(payload)
            if message.get("o") == self.origin:
                return
            if "r" in message:
                message = self._fetch(int(message["r"]))
                if message is None:
                    return
            name, body = message["n"], message["p"]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            log.warning("ignored a malformed event notification on %s", self.channel)
            return
        except (psycopg.Error, DbHandlesError) as exc:
            log.warning("could not read an event sent by reference (%s)", exc)
            return
        self.bus.publish(str(name), body, forward=False)

    def _fetch(self, row_id: int) -> dict[str, Any] | None:
        with self._send_lock:
            conn = self._sending()
            row = conn.execute(
                sql.SQL("SELECT body FROM {} WHERE id = %s").format(self._events), (row_id,)
            ).fetchone()
        if row is None:
            log.warning("an event sent by reference (id %s) was already deleted", row_id)
            return None
        message: dict[str, Any] = orjson.loads(row[0])
        return message
