"""Issue 13: one strict grammar for every number setting (ASCII digits, an optional leading '-',
a fraction and exponent for a float setting), exact bounds (past 2**53 refused for floats as for
whole numbers) and a documented least value for every duration and share."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dbhandles.cli.serve import serve_main
from dbhandles.settings import Settings
from dbhandles.settings_checks import BOUNDS, MAX_NUMBER, parse_setting
from dbhandles.settings_docs import setting_docs

NUMBERS = [f for f in fields(Settings) if f.type in ("int", "float")]
FLOATS = [f for f in NUMBERS if f.type == "float"]
#: Text Python's int() or float() reads as a number, which no number setting takes.
NOT_OUR_GRAMMAR = ["1_000", " 7", "7 ", "+5", "\u0661\u0662", "\u096d", "1\u00a0", "\uff17",
                   "1e+3", "0b1", "1 000", "\t3"]  # fmt: skip


def env_of(name: str) -> str:
    return next(f.metadata["env"] for f in fields(Settings) if f.name == name)


def refused(variable: str, raw: str) -> str:
    with pytest.raises(ValueError, match=" is not allowed: ") as caught:
        Settings.from_env({variable: raw})
    message = str(caught.value)
    shown = json.dumps(raw if len(raw) <= 40 else f"{raw[:40]}...")
    assert message.startswith(f"{variable}: {shown} is not allowed: "), message
    return message


@pytest.mark.parametrize("raw", NOT_OUR_GRAMMAR)
@pytest.mark.parametrize("name", [f.name for f in NUMBERS])
def test_a_number_setting_takes_only_ascii_digits_without_sign_spaces_or_underscores(
    name: str, raw: str
) -> None:
    refused(env_of(name), raw)


@pytest.mark.parametrize("name", [f.name for f in NUMBERS])
def test_minus_zero_is_zero_where_zero_is_allowed(name: str) -> None:
    bound = BOUNDS[name]
    if bound.zero is None and bound.minimum > 0:
        refused(env_of(name), "-0")
        return
    value = getattr(Settings.from_env({env_of(name): "-0"}), name)
    assert value == 0 and str(value) in ("0", "0.0")  # not -0.0


@pytest.mark.parametrize(
    "raw", [str(MAX_NUMBER + 1), f"{MAX_NUMBER + 1}.0", "9007199254740993e0", "1e16"]
)
@pytest.mark.parametrize("name", [f.name for f in FLOATS])
def test_a_float_setting_refuses_past_2_53_before_rounding(name: str, raw: str) -> None:
    if BOUNDS[name].maximum < MAX_NUMBER:
        refused(env_of(name), raw)
        return
    message = refused(env_of(name), raw)
    assert f"at most {MAX_NUMBER}" in message
    taken = getattr(Settings.from_env({env_of(name): str(MAX_NUMBER)}), name)
    assert taken == float(MAX_NUMBER)


@pytest.mark.parametrize("raw", ["1e-320", "1e-9", "1e-400", "0.000001"])
@pytest.mark.parametrize("name", [f.name for f in FLOATS])
def test_a_float_setting_refuses_a_value_below_its_least(name: str, raw: str) -> None:
    """``DBHANDLES_JOB_DUTY=1e-9`` made every job sleep the longest pause; 1e-320 keep-alive closed
    every connection after one answer; 1e-400 (0.0 once read) must not turn into "no limit"."""
    refused(env_of(name), raw)


@pytest.mark.parametrize(
    ("variable", "raw", "least"),
    [("DBHANDLES_JOB_DUTY", "0.001", "at least 0.01, at most 1"),
     ("DBHANDLES_JOB_DUTY", "1.5", "at most 1"),
     ("DBHANDLES_KEEP_ALIVE_SECONDS", "0.05", "at least 0.1"),
     ("DBHANDLES_IDLE_RELEASE_SECONDS", "0.001", "at least 0.01"),
     ("DBHANDLES_WS_OVERFLOW_COOLDOWN_SECONDS", "0.01", "0 (never) or at least 0.1"),
     ("DBHANDLES_SHUTDOWN_GRACE_SECONDS", "0.01", "0 (none) or at least 0.1")],
)  # fmt: skip
def test_each_duration_and_share_has_a_documented_least(
    variable: str, raw: str, least: str
) -> None:
    assert least in refused(variable, raw)
    doc = next(d for d in setting_docs() if d.env == variable)
    assert least.split(", at most")[0] in doc.help


@pytest.mark.parametrize(
    ("variable", "raw", "value"),
    [("DBHANDLES_JOB_DUTY", "0.01", 0.01), ("DBHANDLES_JOB_DUTY", "1", 1.0),
     ("DBHANDLES_KEEP_ALIVE_SECONDS", ".5", 0.5), ("DBHANDLES_KEEP_ALIVE_SECONDS", "2.", 2.0),
     ("DBHANDLES_PUBLIC_RATE", "2E1", 20.0), ("DBHANDLES_CURSOR_TTL_SECONDS", "1e-1", 0.1),
     ("DBHANDLES_PUBLIC_BURST", "007", 7), ("DBHANDLES_MAX_LIMIT", str(MAX_NUMBER), MAX_NUMBER)],
)  # fmt: skip
def test_the_grammar_takes_plain_numbers(variable: str, raw: str, value: float) -> None:
    name = next(f.name for f in fields(Settings) if f.metadata["env"] == variable)
    assert getattr(Settings.from_env({variable: raw}), name) == value


@pytest.mark.parametrize("duty", [0, 0.001, 1.5, 1e-320])
def test_a_job_duty_built_in_python_is_held_to_the_same_bounds(duty: float) -> None:
    with pytest.raises(ValueError, match=r"^DBHANDLES_JOB_DUTY: .* is not allowed: .*at most 1"):
        Settings(job_duty=duty)


#: Texts of our grammar whose reading once raised something else than the setting's refusal:
#: ``decimal.InvalidOperation`` (a traceback at ``jtag serve``, exit status 0) for an exponent past
#: ``Decimal``'s, Python's "Exceeds the limit (4300 digits)" (naming no variable) for a long whole
#: number (issue 13).
HUGE = ["1e99999999999999999999999", "1e-99999999999999999999999", "-1e99999999999999999999999",
        "9" * 5000, "9" * 5000 + ".5", "0." + "0" * 5000 + "1", "1" + "0" * 399 + "e99999",
        "0" * 5000 + "1", "1e100000", "1e-100000"]  # fmt: skip


@pytest.mark.parametrize("raw", HUGE)
@pytest.mark.parametrize("name", [f.name for f in NUMBERS])
def test_a_number_too_long_or_too_far_is_refused_naming_the_variable(name: str, raw: str) -> None:
    message = refused(env_of(name), raw)
    assert len(message) < 300  # the value shortened, what is allowed said
    assert "at least" in message


@pytest.mark.parametrize(
    "raw", ["0e99999999999999999999999", "-0e-99999999999999999999", "0.000e7"]
)
def test_zero_written_with_any_exponent_is_zero(raw: str) -> None:
    assert Settings.from_env({"DBHANDLES_PUBLIC_RATE": raw}).public_rate == 0


@pytest.mark.parametrize(
    ("variable", "raw"),
    [("DBHANDLES_JOB_DUTY", "1.0000000000000001"), ("DBHANDLES_JOB_DUTY", "1.00000000000000000001"),
     ("DBHANDLES_JOB_DUTY", "0.0099999999999999999"),
     ("DBHANDLES_KEEP_ALIVE_SECONDS", "0.0999999999999999999"),
     ("DBHANDLES_PUBLIC_RATE", "0.09999999999999999999"),
     ("DBHANDLES_WS_FRAMES_PER_SECOND", "3.99999999999999999999"),
     ("DBHANDLES_MAX_LIMIT", str(MAX_NUMBER + 1)),
     ("DBHANDLES_CURSOR_TTL_SECONDS", "1000000000.0000000001")],
)  # fmt: skip
def test_bounds_are_compared_with_the_number_as_written_not_its_float(
    variable: str, raw: str
) -> None:
    """The docs say a value is counted exactly as written: its float rounds onto the bound."""
    refused(variable, raw)


@pytest.mark.parametrize(
    ("variable", "raw"),
    [("DBHANDLES_JOB_DUTY", "1.000"), ("DBHANDLES_JOB_DUTY", "0.01"),
     ("DBHANDLES_KEEP_ALIVE_SECONDS", "0.1"), ("DBHANDLES_KEEP_ALIVE_SECONDS", "1e-1"),
     ("DBHANDLES_WS_FRAMES_PER_SECOND", "4"), ("DBHANDLES_CURSOR_TTL_SECONDS", "1000000000")],
)  # fmt: skip
def test_a_bound_itself_is_allowed(variable: str, raw: str) -> None:
    Settings.from_env({variable: raw})


@settings(max_examples=300, deadline=None)
@given(
    field=st.sampled_from(NUMBERS),
    raw=st.one_of(
        st.text(max_size=60),
        st.from_regex(r"\A-?[0-9]{0,30}(\.[0-9]{0,30})?([eE]-?[0-9]{1,40})?\Z"),
        st.builds(
            lambda a, b: a * b, st.sampled_from(["9", "0", "1.", "e9"]), st.integers(0, 6000)
        ),
    ),
)
def test_reading_any_text_raises_nothing_but_the_settings_refusal(field: object, raw: str) -> None:
    name, env, kind = field.name, field.metadata["env"], field.type  # type: ignore[attr-defined]
    message = None
    try:
        parse_setting(env, name, kind, raw)
    except ValueError as exc:
        message = str(exc)
    assert message is None or message.startswith(f"{env}: "), message
    assert message is None or " is not allowed: " in message


@pytest.mark.parametrize(
    ("variable", "raw"),
    [("DBHANDLES_PUBLIC_RATE", "1e99999999999999999999999"),
     ("DBHANDLES_PUBLIC_RATE", "1e-99999999999999999999999"),
     ("DBHANDLES_MAX_CONNECTIONS", "9" * 5000), ("DBHANDLES_JOB_DUTY", "1.0000000000000001")],
)  # fmt: skip
def test_jtag_serve_refuses_the_value_naming_the_variable_with_a_failing_status(
    variable: str, raw: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """It was a traceback (``decimal.InvalidOperation``) with exit status 0, or Python's "Exceeds
    the limit (4300 digits)" naming no variable (issue 13)."""
    monkeypatch.setenv("DBHANDLES_HOME", str(tmp_path))
    monkeypatch.setenv(variable, raw)
    assert serve_main(["--port", "0"]) == 1
    answer = json.loads(capsys.readouterr().out)
    assert answer["code"] == "invalid_params"
    assert answer["error"].startswith(f"configuration: {variable}: "), answer
    assert len(answer["error"]) < 300


@pytest.mark.parametrize(
    ("variable", "least"),
    [("DBHANDLES_MAX_HEADER_BYTES", "0 (no limit) or at least 1024"),
     ("DBHANDLES_MAX_BODY_BYTES", "at least 1024"),
     ("DBHANDLES_MAX_CURSOR_SPEC_BYTES", "at least 1024"),
     ("DBHANDLES_WS_OUTBOX_BYTES", "at least 1024"),
     ("DBHANDLES_MAX_UNSENT_BYTES_PER_ACTOR", "0 (no limit) or at least 1024")],
)  # fmt: skip
def test_a_size_every_request_must_fit_in_is_at_least_a_kib(variable: str, least: str) -> None:
    """``DBHANDLES_MAX_HEADER_BYTES=1`` answered every command 431, ``DBHANDLES_MAX_BODY_BYTES=1``
    every one 413: refused at start, naming the least, which the docs give too."""
    for raw in ("1", "1023"):
        assert least in refused(variable, raw)
    assert getattr(Settings.from_env({variable: "1024"}), _field_of(variable)) == 1024
    doc = next(d for d in setting_docs() if d.env == variable)
    assert least in doc.help


def _field_of(variable: str) -> str:
    return next(f.name for f in fields(Settings) if f.metadata["env"] == variable)
