"""A ``readonly`` handle on a WAL database in a folder the reader cannot write (issue 15, part 6).

SQLite needs a WAL database's ``-shm`` even to read it; where it cannot create one (a read-only
mount, another user's folder) the handle reads the file with ``immutable=1`` and its config carries
the caveat. How this is tested honestly when the suite runs as root (root may write anywhere): the
database is written by this process into a tmp folder that is then made 0555, and the reader is a
child process that, when it runs as root, first drops the capabilities that let root ignore
permission bits (``CAP_DAC_OVERRIDE``, ``CAP_DAC_READ_SEARCH``, ``CAP_FOWNER``, with ``capset(2)``
from every set, so they cannot come back), so the kernel refuses it the folder as it would on a
read-only mount. (Dropping to ``nobody`` instead would lock it out of pytest's own 0700 tmp root,
which a test may not loosen.) Run as another user, the child needs no change. The child shows its
capabilities were dropped by failing to create a file in the folder itself.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.servers import REPO

CHILD = r"""
import json, os, pwd, sys
# Import everything first: after the switch to nobody the interpreter's own files may be unreadable.
import dbhandles.service, dbhandles.settings, dbhandles.context, dbhandles.commands
import dbhandles.importer.command, dbhandles.importer.export, dbhandles.cli.jsonl
import uuid, hashlib, gzip, secrets, encodings.idna
from dbhandles.commands import builtin_commands
builtin_commands()
import ctypes
database, home, output = sys.argv[1:4]
if os.geteuid() == 0:
    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]
    class Sets(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]
    libc = ctypes.CDLL(None, use_errno=True)
    header, sets = Header(0x20080522, 0), (Sets * 2)()  # _LINUX_CAPABILITY_VERSION_3
    assert libc.capget(ctypes.byref(header), sets) == 0
    keep = ~((1 << 1) | (1 << 2) | (1 << 3)) & 0xFFFFFFFF  # DAC_OVERRIDE, DAC_READ_SEARCH, FOWNER
    for name in ("effective", "permitted", "inheritable"):
        setattr(sets[0], name, getattr(sets[0], name) & keep)
    assert libc.capset(ctypes.byref(header), sets) == 0, ctypes.get_errno()
try:
    open(os.path.join(os.path.dirname(database), "probe"), "x").close()
    refused = False
except PermissionError:
    refused = True
from dbhandles.service import Service
from dbhandles.settings import Settings
service = Service(settings=Settings(home=home))
try:
    opened = service.execute(
        "data/open", {"adapter": "sqlite", "config": {"path": database, "mode": "readonly"}}
    )
    handle = opened["dbHandle"]
    listed = service.execute("data/list", {"dbHandle": handle, "collection": "notes"})
    read = service.execute("data/read", {"dbHandle": handle, "collection": "notes", "id": "n1"})
    exported = service.execute(
        "data/export", {"dbHandle": handle, "collection": "notes", "output": output}
    )
    print(json.dumps({"config": opened["config"], "ids": [r["id"] for r in listed["items"]],
                      "read": read["data"], "exported": exported["exported"],
                      "export_caveat": exported.get("caveat"), "refused": refused}))
finally:
    service.close()
"""


def _wal_database(path: Path) -> None:
    """A database in WAL mode written by plain sqlite3, shaped as a dbhandles collection."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(
        "CREATE TABLE notes (id TEXT PRIMARY KEY NOT NULL, data TEXT NOT NULL, created_at TEXT "
        "NOT NULL, updated_at TEXT NOT NULL, version INTEGER NOT NULL)"
    )
    stamp = "2024-01-01T00:00:00.000Z"
    conn.executemany(
        "INSERT INTO notes VALUES (?, ?, ?, ?, 1)",
        [(f"n{i}", orjson.dumps({"text": f"note {i}"}).decode(), stamp, stamp) for i in range(3)],
    )
    conn.commit()
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)  # lasting, in the header
    conn.close()  # the last connection checkpoints: the content is in the main file


def test_readonly_wal_database_in_an_unwritable_folder(tmp_path: Path) -> None:
    if sys.platform != "linux":
        pytest.skip("capabilities are Linux's")
    folder = tmp_path / "mount"
    folder.mkdir()
    database = folder / "data.db"
    _wal_database(database)
    reader = tmp_path / "reader"  # the child's own home and output: writable to it
    reader.mkdir()
    folder.chmod(0o555)
    try:
        result = subprocess.run(
            [sys.executable, "-c", CHILD, str(database), str(reader / "home"),
             str(reader / "out.jsonl")],
            capture_output=True, text=True, cwd=REPO, timeout=120,
        )  # fmt: skip
    finally:
        folder.chmod(0o755)
    assert result.returncode == 0, result.stderr
    report = orjson.loads(result.stdout.strip().splitlines()[-1])
    assert report["refused"], "the reader could write the folder: the test proves nothing"
    assert report["ids"] == ["n0", "n1", "n2"]
    assert report["read"]["text"] == "note 1"
    assert report["exported"] == 3
    assert "immutable=1" in report["config"]["caveat"]
    assert report["export_caveat"] == report["config"]["caveat"]  # export-jsonl prints it too
    lines = (reader / "out.jsonl").read_text().splitlines()
    assert [orjson.loads(line)["id"] for line in lines] == ["n0", "n1", "n2"]
    assert sorted(os.listdir(folder)) == ["data.db"]  # nothing was created next to it


#: The child's start (capabilities dropped, the folder probed) and a report of what the handle
#: says before and after its connection opened the file.
CHILD_CAVEATS = (
    CHILD.split("from dbhandles.service import Service")[0]
    + r"""
from dbhandles.service import Service
from dbhandles.settings import Settings
service = Service(settings=Settings(home=home))
try:
    config = {"path": database, "mode": "readonly"}
    opened = service.execute("data/open", {"adapter": "sqlite", "config": config})
    listed = service.execute("data/list", {"dbHandle": opened["dbHandle"], "collection": "notes"})
    handles = service.execute("data/list-handles", {})["handles"]
    after = next(h["config"] for h in handles if h["handle"] == opened["dbHandle"])
    print(json.dumps({"opened": opened["config"], "after": after, "refused": refused,
                      "ids": [r["id"] for r in listed["items"]]}))
finally:
    service.close()
"""
)


def test_the_caveat_says_how_the_connection_read_the_file(tmp_path: Path) -> None:
    """A WAL database whose -shm and -wal are there (a writer holds them) is read in place even
    from a folder the reader cannot write: it sees the row still in the -wal, and its handle must
    not claim an ``immutable=1`` snapshot that misses it."""
    if sys.platform != "linux":
        pytest.skip("capabilities are Linux's")
    folder = tmp_path / "mount"
    folder.mkdir()
    database = folder / "data.db"
    _wal_database(database)
    writer = sqlite3.connect(database)
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    stamp = "2024-01-02T00:00:00.000Z"
    writer.execute(
        "INSERT INTO notes VALUES ('n3', ?, ?, ?, 1)", ('{"text": "in the wal"}', stamp, stamp)
    )
    writer.commit()
    assert (folder / "data.db-wal").stat().st_size > 0 and (folder / "data.db-shm").exists()
    reader = tmp_path / "reader"
    reader.mkdir()
    folder.chmod(0o555)
    try:
        result = subprocess.run(
            [sys.executable, "-c", CHILD_CAVEATS, str(database), str(reader / "home"), "-"],
            capture_output=True, text=True, cwd=REPO, timeout=120,
        )  # fmt: skip
    finally:
        folder.chmod(0o755)
        writer.close()
    assert result.returncode == 0, result.stderr
    report = orjson.loads(result.stdout.strip().splitlines()[-1])
    assert report["refused"], "the reader could write the folder: the test proves nothing"
    assert report["ids"] == ["n0", "n1", "n2", "n3"]  # read in place: the -wal's row is seen
    assert "caveat" not in report["opened"] and "caveat" not in report["after"]


def test_the_caveat_follows_the_last_connection_to_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before any connection a handle in an unwritable folder says it may be read immutable=1;
    after one, what that connection did (the folder is emulated unwritable: the suite runs as root)."""
    from dbhandles.adapters import sqlite_config

    monkeypatch.setattr(sqlite_config, "folder_writable", lambda path: False)
    monkeypatch.setattr(sqlite_config, "_IMMUTABLE", {})
    path = str(tmp_path / "never.db")
    config = sqlite_config.SqliteConfig(path=path, mode="readonly")
    assert config.public()["caveat"] == sqlite_config.MAYBE_IMMUTABLE_CAVEAT
    sqlite_config.opened_read_only(path, immutable=True)
    assert config.public()["caveat"] == sqlite_config.IMMUTABLE_CAVEAT
    sqlite_config.opened_read_only(path, immutable=False)
    assert "caveat" not in config.public()
    writable = sqlite_config.SqliteConfig(path=path, mode="readwrite")
    assert "caveat" not in writable.public()


#: The child's start, then every door that opens the database: each must refuse it.
CHILD_UNREAD = (
    CHILD.split("from dbhandles.service import Service")[0]
    + r"""
from dbhandles.errors import DbHandlesError
from dbhandles.service import Service
from dbhandles.settings import Settings
service = Service(settings=Settings(home=home))
answers = {}
try:
    config = {"path": database, "mode": "readonly"}
    doors = {
        "open": ("data/open", {"adapter": "sqlite", "config": config}),
        "export": ("data/export", {"input": database, "collection": "notes", "output": output}),
    }
    for door, (command, params) in doors.items():
        try:
            service.execute(command, params)
            answers[door] = "success"
        except DbHandlesError as exc:
            answers[door] = [exc.code, exc.message]
    print(json.dumps({"answers": answers, "refused": refused,
                      "written": os.path.exists(output)}))
finally:
    service.close()
"""
)


@pytest.mark.parametrize("side", ["-wal", "-journal"])
def test_a_side_file_an_immutable_read_would_miss_is_refused(tmp_path: Path, side: str) -> None:
    """Committed writes still in a non-empty -wal (its -shm gone: a copied or crashed database)
    or a hot -journal cannot be read without writing the folder; ``immutable=1`` would silently
    read the main file alone (issue 15: an export said 0 records). Every door refuses it with
    ``storage_error`` naming the side file, and writes nothing."""
    if sys.platform != "linux":
        pytest.skip("capabilities are Linux's")
    source = tmp_path / "source"
    source.mkdir()
    _wal_database(source / "data.db")
    writer = sqlite3.connect(source / "data.db")
    folder = tmp_path / "mount"
    folder.mkdir()
    try:
        if side == "-wal":
            writer.execute("PRAGMA wal_autocheckpoint = 0")
            stamp = "2024-01-02T00:00:00.000Z"
            writer.execute("INSERT INTO notes VALUES ('n3', '{}', ?, ?, 1)", (stamp, stamp))
            writer.commit()
        # A copy of the files as a crash or a copy leaves them: the main file and the side file,
        # no -shm (a hot journal's content is emulated: what the check reads is that it is there).
        shutil.copyfile(source / "data.db", folder / "data.db")
        if side == "-wal":
            shutil.copyfile(source / "data.db-wal", folder / "data.db-wal")
        else:
            (folder / "data.db-journal").write_bytes(
                b"\xd9\xd5\x05\xf9\x20\xa1\x63\xd7" + bytes(504)
            )
    finally:
        writer.close()
    assert (folder / f"data.db{side}").stat().st_size > 0
    reader = tmp_path / "reader"
    reader.mkdir()
    folder.chmod(0o555)
    try:
        result = subprocess.run(
            [sys.executable, "-c", CHILD_UNREAD, str(folder / "data.db"), str(reader / "home"),
             str(reader / "out.jsonl")],
            capture_output=True, text=True, cwd=REPO, timeout=120,
        )  # fmt: skip
    finally:
        folder.chmod(0o755)
    assert result.returncode == 0, result.stderr
    report = orjson.loads(result.stdout.strip().splitlines()[-1])
    assert report["refused"], "the reader could write the folder: the test proves nothing"
    for door, answer in report["answers"].items():
        assert answer != "success", door
        code, message = answer
        assert code == "storage_error", (door, answer)
        assert side in message and "writable folder" in message, (door, message)
    assert not report["written"]
