"""Schemathesis hooks for tests/test_openapi_fuzz.py: strategies for the document's own formats.

JSON Schema cannot say everything the server checks; the OpenAPI document marks those strings with a
``format`` of its own (src/dbhandles/commands/grammar.py). Validators let any string through such a
format, and schemathesis generates its values from the strategies registered here:

- ``re2``: a ``$regex`` that RE2 compiles (``dbhandles.regex.pattern_problem`` says which do);
- ``dbh-postgres-url``: ``postgresql://user@host:port/db`` URLs libpq parses;
- ``dbh-path``: file names whose byte lengths fit, relative or under the fuzzing actor's data space
  (``DBH_FUZZ_SPACE``: the test server lets callers touch nothing else);
- ``dbh-cursor`` and ``dbh-json-object`` (an opaque ``nextCursor``, a JSON text whose content depends
  on another parameter): none; the fuzzer sends the other forms of those parameters.

And one request valid by the document may still be refused for what is on the server's disk (or by
libpq's URL grammar), not for a shape the document could have described: ``STATE_REFUSALS`` lists
those answers (code, field, words of the message), and ``filter_failure`` drops a "schema-valid
request rejected" failure only when the answer is one of them.

Loaded by schemathesis (``hooks`` in the generated schemathesis.toml), not by pytest.
"""

from __future__ import annotations

import os
from typing import Any

import orjson
import schemathesis
from hypothesis import strategies as st

from dbhandles.regex import pattern_problem

_PATTERNS = ["a", "^a", "b$", "a|b", ".", "^$", "[0-9]+", "(?i)ab", "\\d{2,}", "[[:alpha:]]", "\\pL",
             "x*y?z+", "(ab)+", "\\bword\\b", "\\Q.*\\E", "é", "[^a-c]"]  # fmt: skip
_LITERAL = st.text(alphabet="abcxyz019 _-", max_size=12)
RE2 = st.one_of(st.sampled_from(_PATTERNS), _LITERAL).filter(lambda p: pattern_problem(p) is None)

_NAME = st.from_regex(r"[a-z][a-z0-9_-]{0,11}(\.(sqlite|db|json|jsonl|jsonl\.gz))?", fullmatch=True)
_ROOT = os.environ.get("DBH_FUZZ_SPACE", "")
_NESTED = st.lists(_NAME, min_size=1, max_size=3).map("/".join)
PATHS = st.one_of(_NAME, _NESTED, _NESTED.map(lambda p: f"{_ROOT}/{p}") if _ROOT else _NESTED)

_WORD = st.from_regex(r"[a-z][a-z0-9_]{0,7}", fullmatch=True)
POSTGRES_URLS = st.builds(
    lambda scheme, user, host, port, db: f"{scheme}://{user}@{host}{port}/{db}",
    st.sampled_from(["postgresql", "postgres"]), _WORD, _WORD,
    st.sampled_from(["", ":5432", ":6543"]), _WORD,
)  # fmt: skip

schemathesis.openapi.format("re2", RE2)
schemathesis.openapi.format("dbh-postgres-url", POSTGRES_URLS)
schemathesis.openapi.format("dbh-path", PATHS)
schemathesis.openapi.format("dbh-cursor", st.nothing())
schemathesis.openapi.format("dbh-json-object", st.nothing())


#: The params that name files. A path the document allows may still be refused for what is on
#: the disk (a folder or a non-database where a file or database is wanted, a parent that is a
#: file) or for its length in bytes (a name over 255, or a path over 4095 once resolved under the
#: caller's data space: the format ``dbh-path``, which the document cannot spell in characters).
PATH_FIELDS = ("input", "output", "rejects", "config.path", "config.filename")
#: What ``dbfiles.check_path_text`` refuses for the text alone: the document describes these, so
#: such a refusal of a path the document allows is a real mismatch, never dropped.
PATH_SHAPE_WORDS = ("NUL", "the path is empty", "not valid text", "names a folder")
#: Other refusals that do not depend on the request's shape: (code, field, words of the message).
STATE_REFUSALS = (
    # The named file exists and is not a database.
    ("not_a_database", "", ""),
    # libpq's own grammar of connection URLs, which the document names (format dbh-postgres-url)
    # but cannot spell out.
    ("invalid_config", "config.url", "not a valid PostgreSQL URL"),
    # Who the caller is, or what tokens exist: nobody grants rights to themselves, and an actor is
    # an administrator or not, whatever its tokens.
    ("invalid_params", "actor", "you already have your own rights"),
    ("invalid_params", "actor", "already has a"),
    ("invalid_params", "actor", "is an administrator's name"),
    ("invalid_params", "actor", "only in case"),
    # A split names one of its fractions, and the fractions sum to 1: JSON Schema cannot relate
    # one property to another's keys, nor sum values (commands/selection.py checks both).
    ("invalid_params", "split.name", "is not one of the fractions"),
    ("invalid_params", "split.fractions", "must sum to 1"),
    # data/copy's source and target may not be one collection of one database: which database a
    # handle names is the server's state, and JSON Schema cannot compare two properties anyway.
    ("invalid_params", "to.collection", "the same collection of the same database"),
    # ``collection`` names any table or view; only a NEW collection must be an identifier, and
    # whether a table of that name exists is the database's state (docs/foreign-tables.md "Names").
    ("invalid_params", "collection", "a new collection cannot be"),
    # A field that is not an identifier names a foreign table's column; a collection's fields are
    # identifiers on every adapter: which one ``collection`` names is the database's state.
    ("invalid_filter", "", "in a collection: its fields are identifiers"),
    # The original's {field, value, direction} cursor implies its orderBy; another orderBy in the
    # same call is refused (JSON Schema cannot compare a property with another's content).
    ("invalid_params", "cursor", "cursor pages a list ordered by"),
    # Names refuse control and format characters by Unicode category (Cc, Cf, Zl, Zp): the
    # fuzzer reads ``pattern`` with Python's ``re``, which has no ``\p{...}`` categories.
    ("invalid_params", "config.name", "cannot contain control"),
    # query-next/close may name the cursor's collection, which is the server's state.
    ("invalid_params", "collection", "this query is over"),
    # The one rule for values (docs/filters.md "Values"): no string anywhere in a record, key or
    # value, holds U+0000 or a lone surrogate (I-JSON, RFC 7493 section 2.1). JSON Schema can say it
    # of a named string, not of every string inside a free-form ``data`` object.
    ("invalid_params", "", "text contains U+0000 (NUL)"),
    ("invalid_params", "", "is not valid Unicode (it holds a lone surrogate"),
    # The same rule for the values a filter compares with (free-form too).
    ("invalid_filter", "", "text contains U+0000 (NUL)"),
    ("invalid_filter", "", "is not valid Unicode (it holds a lone surrogate"),
)
#: Where ``filter_failure`` notes each failure it drops (the test prints them).
DROPPED_LOG = os.environ.get("DBH_FUZZ_DROPPED_LOG")


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    if getattr(failure, "code", None) != "ST202" or response.status_code != 400:
        return True
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return True
    code, field, error = body.get("code"), body.get("field") or "", body.get("error") or ""
    dropped = any(
        code == want and field.endswith(suffix) and words in error
        for want, suffix, words in STATE_REFUSALS
    ) or (
        code in ("invalid_params", "invalid_config")
        and field in PATH_FIELDS
        and not any(words in error for words in PATH_SHAPE_WORDS)
    )
    if dropped and DROPPED_LOG:
        with open(DROPPED_LOG, "a", encoding="utf-8") as log:
            log.write(f"{case.operation.label}: {code} {field}: {error[:160]}\n")
    return not dropped
