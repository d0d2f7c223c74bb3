"""The error tree: unique stable codes, each documented, each reconstructible from its code."""

from __future__ import annotations

import re
from pathlib import Path

import dbhandles
from dbhandles import errors


def all_classes() -> list[type[errors.DbHandlesError]]:
    return errors._all_error_classes()


def test_codes_are_unique_snake_case() -> None:
    codes = [cls.code for cls in all_classes()]
    assert len(codes) == len(set(codes))
    assert all(re.fullmatch(r"[a-z][a-z_]*", c) for c in codes)


def test_every_code_is_documented_with_its_status() -> None:
    doc = (Path(__file__).parent.parent / "docs" / "errors.md").read_text()
    for cls in all_classes():
        assert f"| `{cls.code}` | {cls.http_status} | `{cls.__name__}` |" in doc, cls


def test_code_maps_back_to_its_class() -> None:
    for cls in all_classes():
        assert errors.error_class_for_code(cls.code) is cls
    assert errors.error_class_for_code("no_such_code") is errors.DbHandlesError


def test_public_api_all_is_sorted_and_complete() -> None:
    # isort-style order (what ruff's RUF022 keeps): CONSTANTS, then Classes, then functions.
    def isort_key(name: str) -> tuple[bool, bool, str]:
        return (not name.isupper(), not name[0].isupper(), name)

    assert list(dbhandles.__all__) == sorted(dbhandles.__all__, key=isort_key)
    for name in dbhandles.__all__:
        assert hasattr(dbhandles, name), name
    for cls in all_classes():
        if cls is not errors.DbHandlesError:
            assert cls.__name__ in dbhandles.__all__, cls
