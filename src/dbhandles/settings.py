"""Service settings declared as data; the environment is read only by ``Settings.from_env``.

Each field carries its documentation as metadata (``setting(env, help)``): the environment variable
that sets it and one sentence of help. ``jtag help serve``, docs/cli.md and the settings table of the
README are generated from it (``scripts/generate-docs.py``), so a new knob is documented by declaring it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from dbhandles.settings_checks import BOUNDS, check_number, parse_setting

__all__ = [
    "DEFAULT_ACCESS",
    "Settings",
    "default_home",
    "setting",
]

#: What ``Settings.default_access`` may say, from least to most.
DEFAULT_ACCESS = ("none", "read", "write", "full")


def default_home() -> Path:
    """``~/.dbhandles``: where the default database and the handle table live."""
    return Path.home() / ".dbhandles"


def _overlaps(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether one of two folders is, or lies in, the other: as given (absolute) or as real paths
    (links resolved, what ``security/paths.py`` decides on)."""
    for x in {Path(os.path.abspath(a)), Path(os.path.realpath(a))}:
        for y in {Path(os.path.abspath(b)), Path(os.path.realpath(b))}:
            if x == y or x in y.parents or y in x.parents:
                return True
    return False


def setting(env: str, help: str, *, shown: str | None = None) -> dict[str, str | None]:
    """The metadata of a ``Settings`` field: its environment variable, its help, and how to show its
    default when the value itself does not read well (``shown``)."""
    return {"env": env, "help": help, "shown": shown}


@dataclass(frozen=True, slots=True)
class Settings:
    """Every knob of the service. ``Settings.from_env()`` reads the ``DBHANDLES_*`` variables."""

    home: Path = field(
        default_factory=default_home,
        metadata=setting(
            "DBHANDLES_HOME",
            "Folder of the default database (default.sqlite), the handle table, admin.token and "
            "server.json.",
            shown="~/.dbhandles",
        ),
    )
    default_limit: int = field(
        default=100,
        metadata=setting(
            "DBHANDLES_DEFAULT_LIMIT",
            "data/list and data/count's limit when none is given (DBHANDLES_MAX_LIMIT if less).",
        ),
    )
    max_limit: int = field(
        default=500, metadata=setting("DBHANDLES_MAX_LIMIT", "Largest limit data/list accepts.")
    )
    query_page_size: int = field(
        default=100,
        metadata=setting(
            "DBHANDLES_QUERY_PAGE_SIZE",
            "data/query-open page size when none is given (DBHANDLES_MAX_LIMIT if less).",
        ),
    )
    cursor_ttl_seconds: float = field(
        default=300.0,
        metadata=setting("DBHANDLES_CURSOR_TTL_SECONDS", "Idle query cursors expire after this."),
    )
    idle_release_seconds: float = field(
        default=300.0,
        metadata=setting(
            "DBHANDLES_IDLE_RELEASE_SECONDS",
            "Idle connections are released after this (the handle stays valid and reconnects).",
        ),
    )
    max_open_databases: int = field(
        default=0,
        metadata=setting(
            "DBHANDLES_MAX_OPEN_DATABASES",
            "Databases kept connected at once; past it the least recently used one is released "
            "(its handle stays valid and reconnects on use).",
            shown="0 (a sixth of the open-files limit)",
        ),
    )
    max_body_bytes: int = field(
        default=10 * 1024 * 1024,
        metadata=setting(
            "DBHANDLES_MAX_BODY_BYTES",
            "Largest HTTP request body (and WebSocket message) the server accepts.",
        ),
    )
    #: Remote administrators may name files only under these folders (``None``: the data root and
    #: the temp folder). The home is never one of them, whatever is listed.
    allowed_roots: tuple[Path, ...] | None = field(
        default=None,
        metadata=setting(
            "DBHANDLES_ALLOWED_ROOTS",
            "Folders (separated by ':') under which remote administrators may open and write "
            "files; the home is never one of them.",
            shown="data root and temp folder",
        ),
    )
    #: Where remote non-admin actors keep their databases and files: ``<data root>/<actor>/``.
    data_root: Path | None = field(
        default=None,
        metadata=setting(
            "DBHANDLES_DATA_ROOT",
            "Folder of the actors' data spaces: a remote non-admin actor's relative names resolve "
            "in <data root>/<actor>/, the only place it may create or write files (never inside "
            "the home).",
            shown="<home>-data (~/.dbhandles-data)",
        ),
    )
    read_roots: tuple[Path, ...] = field(
        default=(),
        metadata=setting(
            "DBHANDLES_READ_ROOTS",
            "Folders (separated by ':') from which remote non-admin actors may read data sets: "
            "import inputs and databases opened with mode readonly (an SQLite one only where no "
            "other OS user can change its path: docs/security.md).",
            shown="none",
        ),
    )
    default_access: str = field(
        default="write",
        metadata=setting(
            "DBHANDLES_DEFAULT_ACCESS",
            "What remote non-admin actors may do in the shared default database: none, read, "
            "write (read, create and update; no delete, truncate, clear or vacuum) or full.",
        ),
    )
    postgres_servers: tuple[str, ...] = field(
        default=(),
        metadata=setting(
            "DBHANDLES_POSTGRES_SERVERS",
            "PostgreSQL servers (host:port, separated by ','; a socket folder for a local one) "
            "that remote non-admin actors may open postgres handles on.",
            shown="none",
        ),
    )
    allowed_hosts: tuple[str, ...] = field(
        default=(),
        metadata=setting(
            "DBHANDLES_ALLOWED_HOSTS",
            "Host names (separated by ',') a request's Host header may name besides the loopback "
            "names and the address 'jtag serve' binds (a name that points at the server, for a "
            "deployment); every other Host is refused (forbidden, 403); '*' turns the check off "
            "(only behind a proxy that checks Host itself).",
            shown="none",
        ),
    )
    #: Each command's queries must finish within this many milliseconds (0: no limit).
    query_timeout_ms: int = field(
        default=10_000,
        metadata=setting(
            "DBHANDLES_QUERY_TIMEOUT_MS",
            "Time budget in ms of a command's queries (pages, counts, cursors, schema samples); past "
            "it they stop with query_timeout. Imports, exports and vacuum have none.",
            shown="10000 (0: no limit)",
        ),
    )
    max_handles_per_actor: int = field(
        default=100,
        metadata=setting(
            "DBHANDLES_MAX_HANDLES_PER_ACTOR", "Open handles one (non-admin) actor may hold."
        ),
    )
    # -- fairness: what one actor may hold of a server (docs/server.md, "Limits") ------------------
    job_threads: int = field(
        default=3,
        metadata=setting(
            "DBHANDLES_JOB_THREADS",
            "Threads that run jobs (data/import, data/export, data/vacuum on a server, and "
            "data/job-start), apart from the threads that answer requests; at least twice "
            "DBHANDLES_JOB_THREADS_PER_ACTOR plus one.",
        ),
    )
    job_threads_per_actor: int = field(
        default=1,
        metadata=setting(
            "DBHANDLES_JOB_THREADS_PER_ACTOR",
            "Job threads one actor's jobs may hold at once (its others wait, queued; a free "
            "thread goes first to the waiting actor holding fewest), so two actors never hold "
            "them all.",
        ),
    )
    max_jobs_per_actor: int = field(
        default=2,
        metadata=setting(
            "DBHANDLES_MAX_JOBS_PER_ACTOR", "Jobs one actor may have queued or running at once."
        ),
    )
    job_process_bytes: int = field(
        default=16 << 20,
        metadata=setting(
            "DBHANDLES_JOB_PROCESS_BYTES",
            "A server job (data/import, data/export, data/copy) on SQLite or PostgreSQL databases "
            "runs in a child process of its own once it reads this many bytes (the import's input, "
            "the source database file), so it never holds the server's GIL (0: every one).",
        ),
    )
    job_retention_seconds: float = field(
        default=3600.0,
        metadata=setting(
            "DBHANDLES_JOB_RETENTION_SECONDS",
            "A finished job's status (and result) stays readable with data/job-status this long.",
        ),
    )
    shutdown_grace_seconds: float = field(
        default=10.0,
        metadata=setting(
            "DBHANDLES_SHUTDOWN_GRACE_SECONDS",
            "On SIGTERM/SIGINT, 'jtag serve' lets running commands and jobs finish this long; then "
            "jobs are cancelled at their next batch (job_cancelled, with what was kept).",
        ),
    )
    max_cursors_per_actor: int = field(
        default=64,
        metadata=setting(
            "DBHANDLES_MAX_CURSORS_PER_ACTOR", "Open query cursors one (non-admin) actor may hold."
        ),
    )
    max_cursor_spec_bytes: int = field(
        default=64 * 1024,
        metadata=setting(
            "DBHANDLES_MAX_CURSOR_SPEC_BYTES",
            "Largest query a cursor keeps (filter, orderBy and fields as JSON), in bytes.",
            shown="64 KiB",
        ),
    )
    body_timeout_seconds: float = field(
        default=30.0,
        metadata=setting(
            "DBHANDLES_BODY_TIMEOUT_SECONDS",
            "A request body must arrive in full within this many seconds (request_timeout, 408).",
        ),
    )
    max_connections: int = field(
        default=1000,
        metadata=setting(
            "DBHANDLES_MAX_CONNECTIONS",
            "Connections 'jtag serve' holds at once; past it a new one closes the oldest idle one "
            "without a token (address holding most), else gets server_unreachable (503), closed.",
        ),
    )
    max_connections_per_address: int = field(
        default=256,
        metadata=setting(
            "DBHANDLES_MAX_CONNECTIONS_PER_ADDRESS",
            "HTTP connections open from one client address that have not authenticated (past "
            "it a new one closes the oldest that runs no request, or is refused); also its "
            "requests in progress plus WebSockets open whose actor is not known from the headers "
            "(an administrator's token passes; a known actor counts in "
            "DBHANDLES_MAX_REQUESTS_PER_ACTOR).",
        ),
    )
    max_requests_per_actor: int = field(
        default=32,
        metadata=setting(
            "DBHANDLES_MAX_REQUESTS_PER_ACTOR",
            "Requests in progress plus WebSockets open of one (non-admin) actor, counted from the "
            "moment its token is read in the headers (a body still arriving included). Past it an "
            "HTTP request waits for one of the actor's places (first come, first served), at most "
            "5 s and 32 waiters a place, then is refused too_many_requests (429, Retry-After: 1); "
            "a WebSocket is refused at once (close code 1013). They do not count "
            "against DBHANDLES_MAX_CONNECTIONS_PER_ADDRESS, so one actor never locks out another "
            "on the same address.",
        ),
    )
    header_timeout_seconds: float = field(
        default=10.0,
        metadata=setting(
            "DBHANDLES_HEADER_TIMEOUT_SECONDS",
            "A request's head (request line and headers) must arrive in full within this many "
            "seconds of its first byte, or of the connection's opening; past it the connection is "
            "closed (a partial head is answered request_timeout, 408).",
        ),
    )
    max_header_bytes: int = field(
        default=64 * 1024,
        metadata=setting(
            "DBHANDLES_MAX_HEADER_BYTES",
            "Largest HTTP request head (request line and headers) the server reads; a larger one "
            "(or one of more than 100 header fields) is answered 431 (payload_too_large, field "
            "headers) and the connection closed (0: no limit).",
            shown="65536 (64 KiB)",
        ),
    )
    keep_alive_seconds: float = field(
        default=5.0,
        metadata=setting(
            "DBHANDLES_KEEP_ALIVE_SECONDS",
            "An HTTP connection idle this long after an answer is closed.",
        ),
    )
    public_requests_per_address: int = field(
        default=8,
        metadata=setting(
            "DBHANDLES_PUBLIC_REQUESTS_PER_ADDRESS",
            "Answers of the tokenless routes (not /health) one client address may leave untaken; "
            "past it a request on a connection holding its own is refused (too_many_requests).",
        ),
    )
    public_rate: float = field(
        default=20.0,
        metadata=setting(
            "DBHANDLES_PUBLIC_RATE",
            "Requests per second, sustained, one client address may send without a valid token to "
            "those routes; past it and the burst, too_many_requests (429) with Retry-After (0: no "
            "limit).",
        ),
    )
    public_burst: int = field(
        default=60,
        metadata=setting(
            "DBHANDLES_PUBLIC_BURST", "Requests at once above DBHANDLES_PUBLIC_RATE (a page load)."
        ),
    )
    public_write_timeout_seconds: float = field(
        default=10.0,
        metadata=setting(
            "DBHANDLES_PUBLIC_WRITE_TIMEOUT_SECONDS",
            "A client must take a public route's answer within this many seconds; past it the "
            "connection is closed (0: no limit).",
        ),
    )
    ws_frames_per_second: float = field(
        default=0.0,
        metadata=setting(
            "DBHANDLES_WS_FRAMES_PER_SECOND",
            "WebSocket frames one non-admin socket may send per second, in bursts of a quarter "
            "of it; an actor's sockets together, twice that. Past it reading pauses.",
            shown="0 (2000 frames)",
        ),
    )
    ws_bytes_per_second: int = field(
        default=0,
        metadata=setting(
            "DBHANDLES_WS_BYTES_PER_SECOND",
            "Bytes one non-admin WebSocket may send per second, counted as the frames above.",
            shown="0 (16 MiB)",
        ),
    )
    max_unsent_bytes_per_actor: int = field(
        default=64 * 1024 * 1024,
        metadata=setting(
            "DBHANDLES_MAX_UNSENT_BYTES_PER_ACTOR",
            "HTTP answer bytes of one caller (its token; its address without one) that its "
            "connections have not read yet; past it its requests are refused too_many_requests "
            "(429) until they read.",
            shown="64 MiB",
        ),
    )
    max_uploads_per_actor: int = field(
        default=8,
        metadata=setting(
            "DBHANDLES_MAX_UPLOADS_PER_ACTOR",
            "Requests with a body over 64 KiB one actor may be sending at once.",
        ),
    )
    max_sockets_per_actor: int = field(
        default=16,
        metadata=setting(
            "DBHANDLES_MAX_SOCKETS_PER_ACTOR", "WebSockets one (non-admin) actor may hold open."
        ),
    )
    max_subscriptions_per_actor: int = field(
        default=256,
        metadata=setting(
            "DBHANDLES_MAX_SUBSCRIPTIONS_PER_ACTOR",
            "Event subscriptions one (non-admin) actor may hold, over all its WebSockets.",
        ),
    )
    ws_outbox_bytes: int = field(
        default=4 * 1024 * 1024,
        metadata=setting(
            "DBHANDLES_WS_OUTBOX_BYTES",
            "Answers and events waiting to be written to one WebSocket; a client that lets more "
            "pile up is closed (code 4000).",
        ),
    )
    ws_overflow_cooldown_seconds: float = field(
        default=5.0,
        metadata=setting(
            "DBHANDLES_WS_OVERFLOW_COOLDOWN_SECONDS",
            "After a (non-admin) actor's WebSocket was closed for unread answers (code 4000), its "
            "new sockets are refused (code 1013) this long (0: never).",
        ),
    )
    #: Writes are refused once a database is larger than this many bytes (0: no limit).
    max_db_bytes: int = field(
        default=0,
        metadata=setting(
            "DBHANDLES_MAX_DB_BYTES",
            "Writes are refused past this database size in bytes.",
            shown="0 (no limit)",
        ),
    )
    max_memory_db_bytes: int = field(
        default=256 << 20,
        metadata=setting(
            "DBHANDLES_MAX_MEMORY_DB_BYTES",
            "Largest memory or json database, in bytes of its records as JSON (they live in the "
            "server's memory, about 5 times as large): a write that would pass it is refused "
            "whole (quota_exceeded) (0: no limit).",
            shown="268435456 (256 MiB)",
        ),
    )
    memory_per_actor_bytes: int = field(
        default=512 << 20,
        metadata=setting(
            "DBHANDLES_MEMORY_PER_ACTOR_BYTES",
            "Most bytes of records (as JSON) all the memory and json databases a non-admin actor "
            "opened may hold together: a write that would pass it is refused whole "
            "(quota_exceeded); administrators are bounded per database only (0: no limit).",
            shown="536870912 (512 MiB)",
        ),
    )
    job_duty: float = field(
        default=0.5,
        metadata=setting(
            "DBHANDLES_JOB_DUTY",
            "Share of the CPU a job running in the server process (data/import, data/export, "
            "data/copy on a memory or json database, or a small one) may take: after each batch it "
            "pauses so that it holds the CPU (and Python's GIL) at most this share of the time (1: "
            "no pause).",
        ),
    )
    switch_interval_ms: float = field(
        default=0.5,
        metadata=setting(
            "DBHANDLES_SWITCH_INTERVAL_MS",
            "Python's thread switch interval in jtag serve (sys.setswitchinterval), in ms: a thread "
            "waiting for the GIL behind a busy one gets it after at most this long (Python's is 5).",
        ),
    )
    audit: bool = field(
        default=True,
        metadata=setting("DBHANDLES_AUDIT", "Write an audit row for every data command."),
    )
    #: A postgresql:// URL: the default database and the handle table live there, shared by servers.
    default_url: str | None = field(
        default=None,
        repr=False,
        metadata=setting(
            "DBHANDLES_DEFAULT_URL",
            "postgresql:// URL of a shared default database: handles, aliases, cursors and tokens "
            "live there, shared by many servers (?schema=name picks the schema; see docs/scaling.md).",
        ),
    )

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name in BOUNDS:  # every number: a size, a count, a rate or a duration
                value = getattr(self, f.name)
                check_number(f.metadata["env"], f.name, value, whole=f.type in ("int", int))
        # A default page is one a caller may ask for: DEFAULT_LIMIT=2**53 refused every data/count.
        for name in ("default_limit", "query_page_size"):
            object.__setattr__(self, name, min(getattr(self, name), self.max_limit))
        # Accept str paths from callers; keep Path internally.
        if not isinstance(self.home, Path):
            object.__setattr__(self, "home", Path(self.home).expanduser())
        if self.allowed_roots is not None:
            object.__setattr__(
                self, "allowed_roots", tuple(Path(r).expanduser() for r in self.allowed_roots)
            )
        # Decided on the paths as given and as the path policy sees them (real paths: links
        # resolved), so a read root that is a link into the data root is refused too.
        if self.data_root is not None:
            object.__setattr__(self, "data_root", Path(self.data_root).expanduser())
            if _overlaps(self.data_root, self.home):
                raise ValueError(
                    f"DBHANDLES_DATA_ROOT: {self.data_root} must be outside the home {self.home} "
                    "(and not hold it), links resolved"
                )
        object.__setattr__(self, "read_roots", tuple(Path(r).expanduser() for r in self.read_roots))
        # A read root that holds (or lies in) the data root would open every actor's space to
        # every actor; one that holds the home, the service's own state.
        data = self.data_root or Path(f"{self.home}-data")
        for read in self.read_roots:
            for guarded, what in ((data, "the data root"), (self.home, "the home")):
                if _overlaps(read, guarded):
                    raise ValueError(
                        f"DBHANDLES_READ_ROOTS: {read} overlaps {what} {guarded} (links "
                        "resolved); read roots are folders of data sets, apart from both"
                    )
        if self.default_access not in DEFAULT_ACCESS:
            raise ValueError(
                f"DBHANDLES_DEFAULT_ACCESS: {json.dumps(self.default_access)} is not one of "
                f"{', '.join(DEFAULT_ACCESS)}"
            )

    @property
    def default_path(self) -> Path:
        return self.home / "default.sqlite"

    def roots(self) -> tuple[Path, ...]:
        """The roots of remote administrators, resolved (defaults: the data root and the system temp
        folder). The home is never inside them: ``security/paths.py`` refuses it before roots count."""
        import tempfile

        roots = (
            self.allowed_roots
            if self.allowed_roots is not None
            else (self.space_root(), Path(tempfile.gettempdir()))
        )
        return tuple(Path(os.path.realpath(r)) for r in roots)

    def space_root(self) -> Path:
        """The data root, resolved: ``data_root``, else ``<home>-data`` next to the home."""
        root = (
            self.data_root
            if self.data_root is not None
            else self.home.with_name(f"{self.home.name}-data")
        )
        return Path(os.path.realpath(root))

    def resolved_read_roots(self) -> tuple[Path, ...]:
        """The read roots, resolved; one that overlaps the data root or the home now (a link
        changed after start-up) counts for nothing."""
        data = self.space_root()
        return tuple(
            Path(os.path.realpath(r))
            for r in self.read_roots
            if not _overlaps(r, data) and not _overlaps(r, self.home)
        )

    def open_databases_limit(self) -> int:
        """``max_open_databases``, or when 0 a sixth of what the process's open-files limit leaves
        after 64 descriptors for sockets and logs (an SQLite database in WAL mode holds three, and
        two more for the read connection it keeps: ``adapters/sqlite_readers``)."""
        if self.max_open_databases > 0:
            return self.max_open_databases
        import resource

        try:
            soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        except (OSError, ValueError):
            soft = 1024
        if soft == resource.RLIM_INFINITY or soft <= 0:
            soft = 65536
        return max(4, min(4096, (soft - 64) // 6))

    def with_home(self, home: str | os.PathLike[str]) -> Settings:
        return replace(self, home=Path(home).expanduser())

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``DBHANDLES_<NAME>`` variables (``DBHANDLES_HOME``, ``DBHANDLES_MAX_LIMIT``...).

        Raises:
            ValueError: a variable's value cannot be read or is not allowed; the message names the
                variable, the value and what is allowed (``settings_checks``).
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f.metadata["env"])
            if raw is not None and raw != "":
                values[f.name] = parse_setting(f.metadata["env"], f.name, f.type, raw)
        return cls(**values)
