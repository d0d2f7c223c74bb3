"""The contract suite runs every test against every adapter and skips only by capability.

* The adapters are the built-ins (``tests.conftest.ADAPTERS``) plus those named with ``--adapter``
  (a third-party adapter installed through the ``dbhandles.adapters`` entry point; see "Writing an
  adapter" in docs/architecture.md).
* ``@pytest.mark.requires("bulk_load", ...)`` skips a test for an adapter whose ``Features`` lacks one
  of the flags; tests never look at adapter names. ``features(adapter_name)`` is the same question
  inside a test.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import pytest

from dbhandles.adapters import Features, get_adapter_class
from tests.conftest import ADAPTERS, FEATURE_SKIP

#: Every flag a test may require.
FEATURE_NAMES = frozenset(f.name for f in fields(Features))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "requires(*features): run only on adapters whose Features has every one of these flags "
        "(tests/contract)",
    )


def contract_adapters(config: pytest.Config) -> list[Any]:
    """The built-in adapters, then each ``--adapter`` not among them."""
    builtin = {getattr(a, "values", (a,))[0] for a in ADAPTERS}
    extra = [n for n in dict.fromkeys(config.getoption("contract_adapters")) if n not in builtin]
    return [*ADAPTERS, *extra]


@pytest.fixture
def adapter_name(request: pytest.FixtureRequest) -> str:
    """The adapter under test (parametrized by ``pytest_generate_tests`` below)."""
    return str(request.param)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "adapter_name" in metafunc.fixturenames:
        metafunc.parametrize("adapter_name", contract_adapters(metafunc.config), indirect=True)


def features(adapter_name: str) -> Features:
    """What the adapter under test declares it can do."""
    return get_adapter_class(adapter_name).features


def pytest_runtest_setup(item: pytest.Item) -> None:
    required = [name for mark in item.iter_markers("requires") for name in mark.args]
    if not required:
        return
    unknown = sorted(set(required) - FEATURE_NAMES)
    if unknown:
        raise pytest.UsageError(
            f"{item.nodeid}: requires({', '.join(map(repr, unknown))}): no such Features flag "
            f"(known: {', '.join(sorted(FEATURE_NAMES))})"
        )
    callspec = getattr(item, "callspec", None)
    if callspec is None or "adapter_name" not in callspec.params:
        raise pytest.UsageError(f"{item.nodeid}: requires(...) needs the adapter_name fixture")
    name = str(callspec.params["adapter_name"])
    missing = [flag for flag in required if not getattr(features(name), flag)]
    if missing:
        item.user_properties.append((FEATURE_SKIP, ",".join(missing)))
        pytest.skip(f"the {name} adapter lacks Features.{', Features.'.join(missing)}")
