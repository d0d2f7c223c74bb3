"""Second outside check of issue 12: an actor is an administrator or not, never both, and read roots
never overlap the data spaces or the home."""

from __future__ import annotations

from pathlib import Path

import pytest

from dbhandles import InvalidParams, Service, Settings


@pytest.mark.parametrize("actor", ["admin", "local", "anonymous", "invalid-token"])
def test_administrator_names_are_never_given_to_a_plain_token(tmp_path: Path, actor: str) -> None:
    with Service(home=tmp_path / "home") as service:
        with pytest.raises(InvalidParams, match="reserved"):
            service.execute("token/create", {"actor": actor})
        assert service.execute("token/create", {"actor": actor, "admin": True})["isAdmin"]


def test_an_actor_is_an_administrator_or_not_never_both(tmp_path: Path) -> None:
    with Service(home=tmp_path / "home") as service:
        service.execute("token/create", {"actor": "ops", "admin": True})
        with pytest.raises(InvalidParams, match="is an administrator's name"):
            service.execute("token/create", {"actor": "ops"})
        service.execute("token/create", {"actor": "alice"})
        with pytest.raises(InvalidParams, match="already has a non-administrator token"):
            service.execute("token/create", {"actor": "alice", "admin": True})


@pytest.mark.parametrize("which", ["parent", "data", "inside-data", "home"])
def test_read_roots_never_overlap_the_data_spaces_or_the_home(tmp_path: Path, which: str) -> None:
    home, data = tmp_path / "x" / "home", tmp_path / "x" / "data"
    root = {"parent": tmp_path / "x", "data": data, "inside-data": data / "bob", "home": home}[
        which
    ]
    with pytest.raises(ValueError, match="DBHANDLES_READ_ROOTS"):
        Settings(home=home, data_root=data, read_roots=(root,))
    Settings(home=home, data_root=data, read_roots=(tmp_path / "datasets",))


def test_the_schema_listing_shows_only_what_the_handle_may_see(tmp_path: Path) -> None:
    with Service(home=tmp_path / "home") as service:
        handle = service.execute(
            "data/open",
            {"adapter": "sqlite", "config": {"path": str(tmp_path / "d.sqlite"), "mode": "create"},
             "permissions": {"deniedCollections": ["secrets"], "rowFilter": {"team": "a"}}},
        )["dbHandle"]  # fmt: skip
        other = service.execute(
            "data/open", {"adapter": "sqlite", "config": {"path": str(tmp_path / "d.sqlite")}}
        )["dbHandle"]
        for collection, team in (("public", "a"), ("public", "b"), ("secrets", "a")):
            service.execute(
                "data/create",
                {"dbHandle": other, "collection": collection, "data": {"team": team}},
            )
        listing = service.execute("data/schema", {"dbHandle": handle})["collections"]
    assert [(c["name"], c["recordCount"]) for c in listing] == [("public", 1)]
