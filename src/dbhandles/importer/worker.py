"""The parser process of an import: reads the input and sends the writer one frame per chunk.

Started by ``parallel.py`` as ``python -I -c <boot> <sys.path JSON> <options JSON>`` with the input
file's descriptor inherited; it reads that file at a position of its own (``ChunkReader.from_fd``),
parses each chunk (``parse.py``) and writes its frame (``frames.py``) to stdout. It imports nothing
heavier than orjson, so it is parsing a few milliseconds after it starts.

It stops quietly when the writer stops reading (done, failed or killed: the pipe breaks) and leaves
Ctrl-C to the writer, which owns the import. A read error (a damaged ``.gz``, a line too long)
ends it with status 3: the writer reads the same bytes, meets the same problem and reports it.
"""

from __future__ import annotations

import os
import signal
import sys

import orjson

from dbhandles.errors import DbHandlesError
from dbhandles.importer.frames import encode
from dbhandles.importer.parse import parse_chunk
from dbhandles.importer.reader import READ_ERRORS, ChunkReader, LineTooLong

__all__ = ["main"]

_FAILURES: tuple[type[Exception], ...] = (DbHandlesError, LineTooLong, *READ_ERRORS)

#: ``sys.path`` comes from the writer, so this process finds exactly the modules the writer uses.
BOOT = (
    "import sys, json; sys.path[:] = json.loads(sys.argv[1]); "
    "from dbhandles.importer.worker import main; sys.exit(main(sys.argv[2]))"
)


def _quiet_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so the flush at exit does not complain."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(options_json: str) -> int:
    """Parse the input named by ``options_json`` (``fd``, ``idField``, ``chunkSize``, ``maxLine``)
    to stdout."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    options = orjson.loads(options_json)
    id_field = options["idField"]
    out = sys.stdout.buffer
    try:
        reader = ChunkReader.from_fd(options["fd"], options["chunkSize"], options["maxLine"])
        with reader:
            for _first, lines in reader:
                out.write(encode(parse_chunk(lines, id_field), lines))
        out.flush()
    except BrokenPipeError:
        _quiet_stdout()
    except _FAILURES as exc:
        print(f"cannot read the input: {exc}", file=sys.stderr)
        return 3
    return 0
