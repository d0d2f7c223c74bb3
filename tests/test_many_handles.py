"""Many open handles never exhaust the process's file descriptors: past a limit derived from the
open-files limit, the least recently used connection is released (its handle stays valid and
reconnects on use), and the default database's connection is never released (issue 16, part 1)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from dbhandles import Service, Settings

CHILD = textwrap.dedent(
    """
    import os, resource, sys
    limit, n, folder = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    from dbhandles import Service
    most = 0
    with Service(home=os.path.join(folder, "home")) as s:
        handles = []
        for i in range(n):
            config = {"path": f"{folder}/db{i}.sqlite", "mode": "create"}
            h = s.execute("data/open", {"adapter": "sqlite", "config": config})["dbHandle"]
            s.execute("data/create", {"dbHandle": h, "collection": "c", "id": "x", "data": {"i": i}})
            handles.append(h)
            most = max(most, len(os.listdir("/proc/self/fd")))
        for i, h in enumerate(handles):  # every handle still works: it reconnects
            record = s.execute("data/read", {"dbHandle": h, "collection": "c", "id": "x"})
            assert record["data"]["i"] == i
            most = max(most, len(os.listdir("/proc/self/fd")))
        assert s.execute("data/list", {"collection": "users"})["success"]
    print(most)
    """
)


def test_open_handles_keep_descriptors_under_a_lowered_limit(tmp_path: Path) -> None:
    limit, handles = 200, 600  # without the pool, about 60 handles exhaust 200 descriptors
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(limit), str(handles), str(tmp_path)],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(done.stdout.split()[-1]) < limit


def test_the_limit_comes_from_the_setting_or_the_descriptor_limit() -> None:
    assert Settings(max_open_databases=7).open_databases_limit() == 7
    assert 4 <= Settings().open_databases_limit() <= 4096


def test_the_least_recently_used_connection_is_released(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", max_open_databases=2)
    with Service(settings=settings) as service:
        handles = [
            service.execute(
                "data/open",
                {"adapter": "sqlite", "config": {"path": str(tmp_path / f"{i}.sqlite"),
                                                 "mode": "create"}},
            )["dbHandle"]
            for i in range(4)
        ]  # fmt: skip
        for h in handles:
            service.execute("data/list", {"dbHandle": h, "collection": "c"})
        connected = [
            h for h in handles if service.registry.reads_never_wait(service.registry.resolve(h))
        ]
        assert connected == handles[-2:]  # the two most recent; the others were released
        assert service.execute("data/list", {"dbHandle": handles[0], "collection": "c"})["success"]
        default = service.registry.resolve(None)
        service.execute("data/list", {"collection": "c"})
        for h in handles:
            service.execute("data/list", {"dbHandle": h, "collection": "c"})
        assert service.registry.reads_never_wait(default)  # never released
