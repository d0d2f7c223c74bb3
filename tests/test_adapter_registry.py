"""Adapters by name: built-ins, third-party registration, entry points and missing drivers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

import pytest

from dbhandles import DriverMissing, Service, UnknownAdapter, adapter_names, register_adapter
from dbhandles import adapters as adapters_mod
from dbhandles.adapters.memory import MemoryAdapter


class ShoutingAdapter(MemoryAdapter):
    """A third-party adapter: the memory adapter under another name."""

    name: ClassVar[str] = "shouting"


@pytest.fixture
def clean_registry() -> Iterator[None]:
    paths, classes = dict(adapters_mod._paths), dict(adapters_mod._classes)
    yield
    adapters_mod._paths.clear()
    adapters_mod._paths.update(paths)
    adapters_mod._classes.clear()
    adapters_mod._classes.update(classes)
    adapters_mod._ready = None  # ready_adapter_classes' memo: built from what was just put back


def test_builtins_are_known() -> None:
    assert {"sqlite", "memory", "json", "postgres"} <= set(adapter_names())


@pytest.mark.usefixtures("clean_registry")
def test_third_party_adapter_registers_and_opens(service: Service) -> None:
    register_adapter(ShoutingAdapter)
    handle = service.execute("data/open", {"adapter": "shouting", "config": {}})["dbHandle"]
    service.execute("data/create", {"dbHandle": handle, "collection": "c", "data": {"x": 1}})
    assert service.execute("data/list-handles")["handles"][1]["adapter"] == "shouting"


@pytest.mark.usefixtures("clean_registry")
def test_duplicate_names_are_refused() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_adapter(ShoutingAdapter, "sqlite")


@pytest.mark.usefixtures("clean_registry")
def test_entry_points_are_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeEntryPoint:
        name = "fromplugin"
        value = "tests.test_adapter_registry:ShoutingAdapter"

    monkeypatch.setattr(adapters_mod, "entry_points", lambda group: [FakeEntryPoint()])
    monkeypatch.setattr(adapters_mod, "_entry_points_loaded", False)
    assert "fromplugin" in adapter_names()
    assert adapters_mod.get_adapter_class("fromplugin") is ShoutingAdapter


@pytest.mark.usefixtures("clean_registry")
def test_missing_driver_names_the_extra() -> None:
    register_adapter("dbhandles_no_such_module:Adapter", "ghostdb")
    adapters_mod._EXTRAS["ghostdb"] = "ghost"
    try:
        with pytest.raises(DriverMissing, match=r"pip install 'dbhandles\[ghost\]'"):
            adapters_mod.get_adapter_class("ghostdb")
    finally:
        del adapters_mod._EXTRAS["ghostdb"]


def test_unknown_adapter() -> None:
    with pytest.raises(UnknownAdapter):
        adapters_mod.get_adapter_class("nope")
