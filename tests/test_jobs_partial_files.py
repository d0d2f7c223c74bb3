"""An export's partial file belongs to the export that wrote it (``importer/export.py``): a leftover of
a killed export is replaced by the next export to that name (also after every process died), one
being written is never touched, and a file no export wrote is never deleted."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dbhandles import Service
from dbhandles.errors import FileExists
from dbhandles.importer.export import PARTIAL_MARK, partial_path, remove_leftover

# An export that is killed (SIGKILL) while it writes its partial file.
_KILLED_EXPORT = """
import os, signal, sys
from pathlib import Path
from dbhandles.importer.export import _Output
out = _Output(Path(sys.argv[1]), False)
out.write(b'{"id": "half"}\\n')
out.stream.flush()
os.kill(os.getpid(), signal.SIGKILL)
"""


def _xattrs_work(folder: Path) -> bool:
    probe = folder / "probe"
    probe.write_bytes(b"")
    try:
        os.setxattr(probe, "user.dbhandles.probe", b"1")
    except OSError:
        return False
    finally:
        probe.unlink()
    return True


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    if not _xattrs_work(tmp_path):
        pytest.skip("this file system keeps no extended attributes (no leftover is recognised)")
    with Service(home=tmp_path / "home") as service:
        for i in range(3):
            service.execute("data/create", {"collection": "c", "id": f"r{i}", "data": {"n": i}})
        yield service


def _export(service: Service, output: Path) -> dict[str, object]:
    return service.execute(
        "data/export", {"dbHandle": "default", "collection": "c", "output": str(output)}
    )


def _kill_an_export(output: Path) -> Path:
    partial = partial_path(output)
    subprocess.run([sys.executable, "-c", _KILLED_EXPORT, str(partial)], check=False, timeout=60)
    assert partial.read_bytes() == b'{"id": "half"}\n'
    assert os.getxattr(partial, PARTIAL_MARK) == b"export"
    return partial


def test_a_killed_exports_partial_file_is_replaced_by_the_next_export(
    service: Service, tmp_path: Path
) -> None:
    output = tmp_path / "out.jsonl"
    partial = _kill_an_export(output)
    assert _export(service, output)["exported"] == 3
    assert len(output.read_bytes().splitlines()) == 3 and not partial.exists()


def test_a_gzip_exports_leftover_is_replaced_too(service: Service, tmp_path: Path) -> None:
    output = tmp_path / "out.jsonl.gz"
    partial = _kill_an_export(output)
    assert _export(service, output)["exported"] == 3 and not partial.exists()


def test_a_partial_file_being_written_is_never_touched(service: Service, tmp_path: Path) -> None:
    from dbhandles.importer.export import _Output

    output = tmp_path / "out.jsonl"
    writing = _Output(partial_path(output), False)  # another export, still writing (locked)
    try:
        with pytest.raises(FileExists, match="another export to this name is writing it"):
            _export(service, output)
        assert remove_leftover(output) is False
        assert partial_path(output).exists() and not output.exists()
    finally:
        writing.close()
    assert remove_leftover(output) is True  # closed without a rename: now a leftover
    assert not partial_path(output).exists()


def test_a_partial_file_no_export_wrote_is_never_deleted(service: Service, tmp_path: Path) -> None:
    output = tmp_path / "out.jsonl"
    partial = partial_path(output)
    partial.write_text("someone's half\n")
    with pytest.raises(FileExists, match="was not written by an export"):
        _export(service, output)
    assert remove_leftover(output) is False
    assert partial.read_text() == "someone's half\n"
    # Only the export's own mark counts.
    os.setxattr(partial, PARTIAL_MARK, b"something else")
    assert remove_leftover(output) is False and partial.exists()
