"""Issue 13: every setting's bad value is refused at start with a message naming the variable, the
value and what is allowed; every limit says what 0 means or refuses it (docs/server.md, "Limits")."""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any

import pytest

from dbhandles.settings import Settings
from dbhandles.settings_checks import BOUNDS, MAX_NUMBER
from dbhandles.settings_docs import setting_docs

NUMBERS = [f for f in fields(Settings) if f.type in ("int", "float")]
WHOLE = [f for f in NUMBERS if f.type == "int"]
#: Text no number setting takes: words, not-a-number, infinities, negatives, past MAX_NUMBER.
BAD_NUMBERS = ["abc", "nan", "NaN", "inf", "-inf", "1e400", "-1", "-0.5", "0x10", "", "1,5",
               str(MAX_NUMBER * 10), "9" * 400]  # fmt: skip


def test_every_number_setting_has_a_bound_and_nothing_else_does() -> None:
    assert {f.name for f in NUMBERS} == set(BOUNDS)


def env_of(name: str) -> str:
    return next(f.metadata["env"] for f in fields(Settings) if f.name == name)


def refused(env: dict[str, str]) -> str:
    with pytest.raises(ValueError, match=r" is not allowed| is not one of") as caught:
        Settings.from_env(env)
    return str(caught.value)


@pytest.mark.parametrize("raw", BAD_NUMBERS)
@pytest.mark.parametrize("name", [f.name for f in NUMBERS])
def test_a_number_setting_refuses_what_is_no_allowed_number(name: str, raw: str) -> None:
    variable = env_of(name)
    if raw == "":
        assert Settings.from_env({variable: raw}) == Settings()  # empty: not set
        return
    message = refused({variable: raw})
    shown = raw if len(raw) <= 40 else f"{raw[:40]}..."  # a long value is cut
    assert message.startswith(f"{variable}: {json.dumps(shown)} is not allowed: "), message
    assert "number" in message and ("at least" in message or "more than" in message)


@pytest.mark.parametrize("raw", ["0.5", "1.5", "2.0", "1e3"])
@pytest.mark.parametrize("name", [f.name for f in WHOLE])
def test_a_whole_number_setting_refuses_a_fraction(name: str, raw: str) -> None:
    message = refused({env_of(name): raw})
    assert "a whole number" in message and json.dumps(raw) in message


@pytest.mark.parametrize("name", [f.name for f in NUMBERS])
def test_zero_is_either_documented_or_refused(name: str) -> None:
    bound = BOUNDS[name]
    doc = next(d for d in setting_docs() if d.name == name)
    if bound.zero is not None or (bound.minimum == 0 and not bound.exclusive):
        Settings.from_env({env_of(name): "0"})
        assert "Allowed:" in doc.help and ("0 (" in doc.help or "at least 0" in doc.help), doc
    else:
        assert "is not allowed" in refused({env_of(name): "0"})
        assert "Allowed:" in doc.help and "0 (" not in doc.help.split("Allowed:")[1]


@pytest.mark.parametrize("name", [f.name for f in NUMBERS])
def test_the_smallest_allowed_value_is_taken(name: str) -> None:
    bound = BOUNDS[name]
    smallest: Any = bound.minimum + (0.5 if bound.exclusive else 0)
    field = next(f for f in NUMBERS if f.name == name)
    text = str(int(smallest)) if field.type == "int" else str(smallest)
    value = getattr(Settings.from_env({env_of(name): text}), name)
    assert value == (int(text) if field.type == "int" else float(text))


@pytest.mark.parametrize(
    ("variable", "raw"),
    [("DBHANDLES_PUBLIC_BURST", "nan"), ("DBHANDLES_PUBLIC_BURST", "0.5"),
     ("DBHANDLES_PUBLIC_REQUESTS_PER_ADDRESS", "x"), ("DBHANDLES_PUBLIC_REQUESTS_PER_ADDRESS", "1.5"),
     ("DBHANDLES_WS_BYTES_PER_SECOND", "1e400"), ("DBHANDLES_PUBLIC_RATE", "abc"),
     ("DBHANDLES_PUBLIC_REQUESTS_PER_ADDRESS", "0"), ("DBHANDLES_WS_BYTES_PER_SECOND", "1")],
)  # fmt: skip
def test_the_reported_values_name_the_setting_and_what_is_allowed(variable: str, raw: str) -> None:
    message = refused({variable: raw})
    assert message.startswith(f"{variable}: "), message
    assert raw in message and "Traceback" not in message and "int()" not in message


@pytest.mark.parametrize("raw", ["maybe", "2", "tru", "nan"])
def test_a_boolean_setting_refuses_what_is_no_boolean(raw: str) -> None:
    message = refused({"DBHANDLES_AUDIT": raw})
    assert message.startswith(f"DBHANDLES_AUDIT: {json.dumps(raw)} is not allowed: one of ")


@pytest.mark.parametrize(
    ("raw", "value"), [("1", True), ("YES", True), (" off ", False), ("0", False)]
)
def test_a_boolean_setting_reads_its_words(raw: str, value: bool) -> None:
    assert Settings.from_env({"DBHANDLES_AUDIT": raw}).audit is value


@pytest.mark.parametrize("name", [f.name for f in NUMBERS])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1, True])
def test_settings_built_in_python_are_held_to_the_same_bounds(name: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"^{env_of(name)}: .* is not allowed: "):
        Settings(**{name: value})  # type: ignore[arg-type]


def test_the_default_access_names_what_is_allowed() -> None:
    assert "none, read, write, full" in refused({"DBHANDLES_DEFAULT_ACCESS": "admin"})


def test_the_cli_reports_a_bad_setting_as_a_clear_error(tmp_path: Any) -> None:
    import subprocess
    import sys

    env = {"DBHANDLES_HOME": str(tmp_path / "home"), "DBHANDLES_PUBLIC_BURST": "nan",
           "PATH": "/usr/bin:/bin"}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "dbhandles.cli", "data/list-handles"],
        env={**env, "PYTHONPATH": __import__("os").environ.get("PYTHONPATH", "src")},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode != 0 and "Traceback" not in out, out
    assert 'DBHANDLES_PUBLIC_BURST: \\"nan\\" is not allowed' in out or (
        'DBHANDLES_PUBLIC_BURST: "nan" is not allowed' in out
    ), out
