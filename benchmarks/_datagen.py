"""Deterministic continuum-git-shaped JSONL records for benchmarks and tests.

The shape follows the reference (section 6): ``messages`` (system / user / assistant, the assistant
holding a ``git show`` patch) and ``metadata`` (``source``, ``timestamp``, ``topics``, ``qualityScore``,
``tokenCount``, ``git`` {hash, author, email, filesChanged, linesAdded, linesDeleted}). The same
``seed`` always gives the same bytes. Patch sizes vary (mean about 1.5 KB) like real commits do.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

__all__ = ["SYSTEM_PROMPT", "generate_file", "quality_score", "record", "records"]

SYSTEM_PROMPT = (
    "You are an expert software engineer learning from this project's git history. Given a "
    "description of a change, write the code changes (as a unified diff) that implement it."
)
_VERBS = [
    "Fix",
    "Add",
    "Refactor",
    "Improve",
    "Remove",
    "Update",
    "Implement",
    "Document",
    "Speed up",
]
_THINGS = ["handle registry", "data/list paging", "sqlite adapter", "query cursor", "event bus", "CLI parser",
           "persona memory", "RAG context builder", "training pipeline", "async command queue", "entity model"]  # fmt: skip
_FILES = ["src/daemons/data-daemon/server/DatabaseHandleRegistry.ts", "src/commands/data/list/DataList.ts",
          "src/system/user/BaseUser.tsx", "workers/data/src/sqlite.rs", "scripts/generate-git-dataset.ts",
          "tests/integration/multi-database-handles.test.ts", "docs/MULTI-DATABASE-HANDLES.md",
          "python/training/prepare.py"]  # fmt: skip
_AUTHORS = [("Ada Lovelace", "ada@example.org"), ("Grace Hopper", "grace@example.org"),
            ("Linus Torvalds", "linus@example.org"), ("Barbara Liskov", "barbara@example.org")]  # fmt: skip
_WORDS = ["const", "let", "return", "await", "async", "function", "if", "else", "for", "of", "in", "new", "this", "handle", "result", "data", "record", "cursor", "filter", "limit", "query", "close", "open", "adapter", "config", "path", "mode", "error"]  # fmt: skip
_TOPIC_RULES = [(".ts", "typescript"), (".tsx", "react"), (".py", "python"), (".rs", "rust"), ("test", "testing"),
                ("fix", "bugfix"), ("feat", "feature"), ("refactor", "refactoring"), ("perf", "performance"),
                ("docs", "documentation"), ("entity", "data-model"), ("model", "data-model"),
                ("command", "command-pattern"), ("async", "async"), ("await", "async")]  # fmt: skip
_EPOCH = datetime(2025, 5, 1, tzinfo=UTC)


def quality_score(message: str, files: int, changed: int) -> float:
    """The generator's scoring rule (reference section 6), clamped to 0..1."""
    score = 0.5
    score += 0.1 if len(message) > 50 else 0
    score += 0.1 if len(message) > 100 else 0
    score += 0.1 if files > 1 else 0
    score += 0.1 if files > 3 else 0
    score += 0.1 if 10 < changed < 500 else 0
    score += 0.1 if 50 < changed < 200 else 0
    score -= 0.2 if changed < 5 else 0
    score -= 0.1 if changed > 1000 else 0
    return round(min(max(score, 0.0), 1.0), 2)


def _patch(rng: random.Random, files: list[str], added: int, deleted: int) -> str:
    out: list[str] = []
    for name in files:
        out.append(f"diff --git a/{name} b/{name}\nindex {rng.getrandbits(28):07x}..{rng.getrandbits(28):07x}"
                   f" 100644\n--- a/{name}\n+++ b/{name}\n@@ -{rng.randint(1, 400)},7 +{rng.randint(1, 400)},9 @@")  # fmt: skip
    for sign, count in (("-", deleted), ("+", added)):
        for _ in range(count):
            words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(2, 8)))
            out.append(f"{sign}  {words};")
    return "\n".join(out) + "\n"


def record(index: int, seed: int = 0) -> dict[str, Any]:
    """Record number ``index`` of the stream for ``seed``."""
    rng = random.Random(f"{seed}:{index}")
    message = f"{rng.choice(_VERBS)} {rng.choice(_THINGS)}" + (
        f" so that {rng.choice(_THINGS)} stays consistent" * rng.randint(0, 2)
    )
    files = rng.sample(_FILES, rng.randint(1, 5))
    changed = max(1, int(rng.lognormvariate(3.0, 0.9)))
    added = rng.randint(0, changed)
    deleted = changed - added
    diff = _patch(rng, files, added, deleted)
    lowered = (message + " " + " ".join(files)).lower()
    topics = sorted({topic for needle, topic in _TOPIC_RULES if needle in lowered})
    author, email = rng.choice(_AUTHORS)
    when = _EPOCH + timedelta(minutes=index * 7 + rng.randint(0, 6))
    return {
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": f"What code changes are needed to implement: {message}"},
            {"role": "assistant", "content": diff},
        ],
        "metadata": {
            "source": "git",
            "timestamp": when.strftime("%Y-%m-%dT%H:%M:%S+00:00"),
            "topics": topics,
            "qualityScore": quality_score(message, len(files), changed),
            "tokenCount": math.ceil(len(diff) / 4),
            "git": {
                "hash": hashlib.sha1(f"{seed}:{index}".encode()).hexdigest(),
                "author": author,
                "email": email,
                "filesChanged": len(files),
                "linesAdded": added,
                "linesDeleted": deleted,
            },
        },
    }


def records(count: int, seed: int = 0) -> Iterator[dict[str, Any]]:
    """``count`` records, deterministic for ``seed``."""
    for i in range(count):
        yield record(i, seed)


def generate_file(path: str | Path, count: int, seed: int = 0) -> Path:
    """Write ``count`` records as JSONL to ``path`` (gzip-compressed when it ends in ``.gz``)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as out:
        chunk: list[bytes] = []
        for rec in records(count, seed):
            chunk.append(orjson.dumps(rec))
            if len(chunk) == 1000:
                out.write(b"\n".join(chunk) + b"\n")
                chunk.clear()
        if chunk:
            out.write(b"\n".join(chunk) + b"\n")
    return path
