"""Parsing ahead of the writer, in a second process: the import uses two CPUs instead of one.

An import is two halves of about the same cost: parsing (orjson, the content hash, the checks) and
writing (SQLite). Threads cannot overlap them, since both hold the GIL, so the parser runs in a process
of its own (``worker.py``): it reads the input file through the writer's descriptor, at its own
position, and sends one small frame per chunk (the ids, or what is special about a line; never the
line itself). The writer reads the same chunks from the same file, pairs each one with its frame and
inserts. Only ids cross the pipe (about 1.5% of the input). The pipe holds ``PIPE_BYTES`` (1 MiB, on
Linux; 64 KiB elsewhere): the parser may run dozens of plain chunks ahead, so neither process waits
for the other when the scheduler runs one and not the other (a busy machine), and memory stays flat.

The process is an accelerator, never a requirement: if it cannot start or stops early, the writer
logs a warning and parses the remaining chunks itself. A chunk whose frame describes different lines
than the writer read means the file changed under the import, which stops it.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import IO, Literal

import orjson

from dbhandles.errors import InvalidParams
from dbhandles.importer.frames import HEADER, decode
from dbhandles.importer.parse import ParsedChunk, parse_chunk
from dbhandles.importer.reader import ChunkReader
from dbhandles.importer.worker import BOOT

__all__ = ["PIPE_BYTES", "PROCESS_THRESHOLD", "ParserMode", "open_parser", "use_process"]

ParserMode = Literal["auto", "process", "inline"]
#: ``auto`` parses in a second process from this input size on (the process costs ~50 ms to start).
PROCESS_THRESHOLD = 16 << 20
#: The frames the parser may write ahead of the writer: ~65 chunks of plain lines (a frame of ids is
#: ~15 KiB a 1 MiB chunk), one of reserved rows (whose frame carries their text). Linux's default
#: pipe (64 KiB, 4 chunks) made the writer wait 1.7-3.1 s of a 6-13 s import on a loaded machine,
#: 0.6-1.3 s with this one (benchmarks/import_jsonl.py, docs/performance.md).
PIPE_BYTES = 1 << 20

_log = logging.getLogger("dbhandles.importer")

Parse = Callable[[list[bytes]], ParsedChunk]


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _deepen(fd: int) -> None:
    """Make the pipe ``fd`` hold ``PIPE_BYTES`` where the system lets this user (Linux's
    ``/proc/sys/fs/pipe-max-size``, 1 MiB by default); otherwise it keeps its size."""
    if sys.platform != "linux":
        return
    import fcntl

    # EPERM past pipe-max-size or past this user's pipe quota: the pipe keeps its size.
    with suppress(OSError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)


def use_process(mode: ParserMode, total_bytes: int) -> bool:
    """Whether to parse in a second process: always (``process``), never (``inline``), or (``auto``)
    for inputs of ``PROCESS_THRESHOLD`` bytes or more on a machine with two CPUs or more."""
    if mode != "auto":
        return mode == "process"
    return total_bytes >= PROCESS_THRESHOLD and _usable_cpus() >= 2


class _ParserProcess:
    """The running parser process and its frames."""

    def __init__(self, reader: ChunkReader, id_field: str | None) -> None:
        options = {"fd": reader.fileno(), "idField": id_field, "chunkSize": reader.chunk_size,
                   "maxLine": reader.max_line}  # fmt: skip
        paths = [os.path.abspath(path) for path in sys.path]
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
        try:
            self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
                [sys.executable, "-I", "-c", BOOT, orjson.dumps(paths).decode(),
                 orjson.dumps(options).decode()],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                pass_fds=(reader.fileno(),),
            )  # fmt: skip
        except BaseException:
            self._stderr.close()
            raise
        assert self._proc.stdout is not None
        _deepen(self._proc.stdout.fileno())

    def next(self, lines: list[bytes]) -> ParsedChunk | None:
        """The parsed form of ``lines`` (the next chunk), or ``None`` when the process has stopped.

        Raises:
            InvalidParams: the process read other lines than ``lines``: the file changed.
        """
        if self._proc is None or self._proc.stdout is None:
            return None
        out = self._proc.stdout
        header = out.read(HEADER.size)
        if len(header) < HEADER.size:
            return None
        length, extra = HEADER.unpack(header)
        body = out.read(length)
        payload = out.read(extra) if extra else b""
        if len(body) < length or len(payload) < extra:
            return None
        try:
            count, size, chunk = decode(body, payload)
        except (ValueError, TypeError, KeyError, IndexError, StopIteration):
            return None  # a garbled frame: the writer parses this chunk itself
        if count != len(lines) or size != sum(map(len, lines)):
            raise InvalidParams(
                "input: the file changed while it was being imported (the parser read "
                f"{count} lines / {size} bytes where the writer read {len(lines)} / "
                f"{sum(map(len, lines))}); re-run the import once the file is complete",
                field="input",
            )
        return chunk

    def failure(self) -> str:
        """Why the process stopped early (its exit status and the end of its stderr); closes it."""
        status = self._reap()
        self._stderr.seek(0)
        detail = self._stderr.read()[-2000:].decode("utf-8", "replace").strip()
        self.close()
        return f"exit status {status}" + (f": {detail}" if detail else "")

    def _reap(self) -> int | None:
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.kill()
        assert proc.stdout is not None
        proc.stdout.close()
        return proc.wait()

    def close(self) -> None:
        """Stop the process if it still runs, reap it, drop its stderr; idempotent."""
        self._reap()
        self._stderr.close()


@contextmanager
def open_parser(reader: ChunkReader, id_field: str | None, mode: ParserMode) -> Iterator[Parse]:
    """A function parsing the chunks of ``reader``, one call per chunk, in order.

    With a parser process (see ``use_process``) the call pairs the chunk with the process's frame;
    if the process cannot start or stops early, it parses the chunk itself from then on.
    """
    if not use_process(mode, reader.total_bytes):
        yield lambda lines: parse_chunk(lines, id_field)
        return
    process: _ParserProcess | None
    try:
        process = _ParserProcess(reader, id_field)
    except (OSError, ValueError) as exc:  # no such interpreter; no pass_fds on this platform
        _log.warning("import: cannot start the parser process (%s); parsing in this one", exc)
        process = None

    def parse(lines: list[bytes]) -> ParsedChunk:
        nonlocal process
        if process is not None:
            chunk = process.next(lines)
            if chunk is not None:
                return chunk
            _log.warning(
                "import: the parser process stopped early (%s); parsing in this one",
                process.failure(),
            )
            process = None
        return parse_chunk(lines, id_field)

    try:
        yield parse
    finally:
        if process is not None:
            process.close()
