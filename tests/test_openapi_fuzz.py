"""The OpenAPI document against a real server: schemathesis sends what the document allows (and what
it forbids) to ``jtag serve`` on a throwaway home, and fails on any 5xx, any answer outside the
document (status, content type, body schema), any request valid by the document that is refused
(``positive_data_acceptance``) and any invalid one that is accepted (``negative_data_rejection``).

Bounded: two runs of ``FUZZ_SECONDS`` in all (``DBH_FUZZ_SECONDS`` overrides it). The first runs as a
non-admin actor over every operation (so ``data/open`` cannot reach a PostgreSQL server the fuzzer
names); the second as the administrator over the administrators' commands. ``DBH_FUZZ_SEED`` replays
a run. What JSON Schema cannot say is a ``format`` of the document's own; tests/openapi_fuzz_hooks.py
generates those values, and lets through the few refusals that depend on the server's files or on
who calls rather than on the request (each listed there; ``pytest -s`` prints the ones it saw).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from dbhandles.commands import builtin_commands
from dbhandles.server.http import STATIC_FILES
from dbhandles.server.openapi import STATIC_ROUTES
from tests.servers import REPO, ServerProcess

#: Seconds of fuzzing in all (both runs), on top of starting the server.
FUZZ_SECONDS = int(os.environ.get("DBH_FUZZ_SECONDS", "150"))
SEED = int(os.environ.get("DBH_FUZZ_SEED", "20250416"))
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "positive_data_acceptance",
    "negative_data_rejection",
)
ACTOR = "fuzzer"
ADMIN_ONLY = sorted(name for name, cmd in builtin_commands().items() if cmd.admin_only)

CONFIG = """\
hooks = "tests.openapi_fuzz_hooks"

[cache]
enabled = false

[generation]
database = "none"

[warnings]
fail-on = ["unsupported_regex", "unresolvable_reference", "missing_deserializer"]
"""


def _schemathesis() -> str:
    found = Path(sys.executable).with_name("schemathesis")
    if found.exists():
        return str(found)
    which = shutil.which("schemathesis")
    if which is None:
        pytest.fail("schemathesis is missing: pip install -e '.[dev]' (make test does)")
    return which


def _run(server: ServerProcess, work: Path, token: str, seconds: int, *select: str) -> str:
    """One schemathesis run against ``server``; returns its output, failing the test on failures."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "DBH_FUZZ_SPACE": str(work / "data" / ACTOR),
           "DBH_FUZZ_DROPPED_LOG": str(work / "dropped.log"), "NO_COLOR": "1"}  # fmt: skip
    env.pop("CI", None)  # schemathesis changes its output under CI; the exit status is what counts
    command = [
        _schemathesis(), "--config-file", str(work / "schemathesis.toml"), "run",
        f"{server.url}/openapi.json", "--header", f"Authorization: Bearer {token}",
        "--checks", ",".join(CHECKS), "--workers", "2", "--max-examples", "25",
        "--max-time", str(seconds), "--seed", str(SEED), "--request-timeout", "20",
        "--phases", "examples,coverage,fuzzing", "--no-color", *select,
    ]  # fmt: skip
    proc = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True,
                          timeout=seconds + 240, check=False)  # fmt: skip
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        server.stop()  # its log has the traceback of any 5xx
        pytest.fail(
            f"schemathesis found mismatches (seed {SEED}; exit {proc.returncode}):\n"
            f"{output[-30000:]}\n--- server log (end) ---\n{server.output[-8000:]}",
            pytrace=False,
        )
    return output


@pytest.mark.needs_server
@pytest.mark.timeout(FUZZ_SECONDS + 600)
def test_the_server_answers_as_its_openapi_document_says(tmp_path: Path) -> None:
    assert set(STATIC_ROUTES) == set(STATIC_FILES)
    home, data, datasets = tmp_path / "home", tmp_path / "data", tmp_path / "datasets"
    data.mkdir()
    datasets.mkdir()
    (tmp_path / "schemathesis.toml").write_text(CONFIG)
    server = ServerProcess(home)
    # Callers may only touch files under tmp_path (a remote administrator included).
    server.env.update(DBHANDLES_DATA_ROOT=str(data), DBHANDLES_ALLOWED_ROOTS=str(data),
                      DBHANDLES_READ_ROOTS=str(datasets))  # fmt: skip
    started = time.monotonic()
    with server:
        admin = server.token
        created = httpx.post(f"{server.url}/commands/token/create", json={"actor": ACTOR},
                             headers={"Authorization": f"Bearer {admin}"}, timeout=10)  # fmt: skip
        assert created.status_code == 200, created.text
        first = max(FUZZ_SECONDS * 2 // 3, 1)
        outputs = [_run(server, tmp_path, created.json()["token"], first)]
        outputs.append(_run(server, tmp_path, admin, max(FUZZ_SECONDS - first, 1),
                            "--include-operation-id-regex", "^(" + "|".join(ADMIN_ONLY) + ")$"))  # fmt: skip
        assert server.proc is not None and server.proc.poll() is None, "the server died"
    for output in outputs:  # shown with pytest -s (or -rP): what was tested, and the warnings
        start = min((output.find(w) for w in ("= WARNINGS", "= SUMMARY") if w in output), default=0)
        print(output[max(start - 40, 0) :])
    dropped = tmp_path / "dropped.log"
    if dropped.exists():  # the refusals tests/openapi_fuzz_hooks.py lets through, and why
        print("dropped (state-dependent refusals):\n" + dropped.read_text()[-4000:])
    print(f"fuzzed for {time.monotonic() - started:.0f}s (seed {SEED})")


def test_the_document_requires_what_the_commands_require() -> None:
    """Without a server: the body is required exactly when a param is, names carry their patterns,
    and every route the app serves (but /ws) is described."""
    from dbhandles.context import ACTOR_PATTERN
    from dbhandles.filters import COLLECTION_PATTERN
    from dbhandles.server.openapi import openapi_document
    from dbhandles.settings import Settings

    doc = openapi_document("test", Settings(max_limit=321))
    schemas = doc["components"]["schemas"]
    for name, command in builtin_commands().items():
        item = doc["paths"][f"/commands/{name}"]
        assert set(item) == {"get", "post"}, name
        ref = item["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        params = schemas[ref.rsplit("/", 1)[-1]]
        needs = any(f.is_required() for f in command.params.model_fields.values())
        assert item["post"]["requestBody"]["required"] is (needs or name == "data/open"), name
        assert {"200", "400", "401", "413", "422"} <= set(item["post"]["responses"]), name
        assert "x-dbh-ref" not in str(params) and "x-maximum-setting" not in str(params)
    assert schemas["ReadParams"]["properties"]["collection"]["pattern"] == COLLECTION_PATTERN
    assert schemas["TokenCreateParams"]["properties"]["actor"]["pattern"] == ACTOR_PATTERN
    assert schemas["ListParams"]["properties"]["limit"]["anyOf"][0]["maximum"] == 321
    opening = schemas["OpenParams"]
    # ``adapter`` may be left out (sqlite is the default) but is never null.
    assert "adapter" not in opening.get("required", [])
    assert opening["properties"]["adapter"]["type"] == "string"
    assert {"required": ["adapter"]} in [branch.get("not") for branch in opening["anyOf"]]
    assert schemas["ErrorEnvelope"]["additionalProperties"] is True
    assert {"/commands", "/health", "/openapi.json", *STATIC_FILES} <= set(doc["paths"])
