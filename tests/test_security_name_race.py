"""Issue 12 left-over 2: one actor name never gets two spellings, however its token and grant race.

``token create`` refuses a name that differs only in case from a grantee's, and ``data/grant`` one
that differs only in case from a token holder's or another grantee's. Each check runs in the store's
write transaction with its insert (``HandleStore.put_token``/``put_grant``), so a token and a grant
created at the same moment, by two services on one home, cannot both pass. See docs/security.md.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dbhandles import Context, Service
from dbhandles.errors import DbHandlesError
from dbhandles.settings import Settings

ALICE = Context(actor="alice", session_id="s-alice", is_admin=False, trusted_local=False)
#: Grants ahead of a name's first token are an administrator's (a non-admin names only token
#: holders, docs/security.md §6): the races below are between an administrator's grants.
ROOT = Context(actor="root", session_id="s-root", is_admin=True, trusted_local=False)
ROUNDS = 25


@pytest.fixture
def two_services(tmp_path: Path) -> Iterator[tuple[Service, Service, str]]:
    """Two services on one home (two store connections, as two servers would have), and alice's
    handle in the second to a database of her space."""
    settings = Settings(home=tmp_path / "home")
    first = Service(settings=settings)
    try:
        first.tokens.create("alice")
        second = Service(settings=settings)
        try:
            opened = second.execute(
                "data/open",
                {"adapter": "sqlite", "config": {"path": "shared.sqlite", "mode": "create"}},
                context=ALICE,
            )
            yield first, second, str(opened["dbHandle"])
        finally:
            second.close()
    finally:
        first.close()


def race(*steps: Callable[[], object]) -> list[str]:
    """Run ``steps`` at once (released together by a barrier); each one's outcome: ``ok`` or the
    code it was refused with."""
    barrier = threading.Barrier(len(steps))
    outcomes = ["unset"] * len(steps)

    def run(n: int) -> None:
        barrier.wait()
        try:
            steps[n]()
            outcomes[n] = "ok"
        except DbHandlesError as exc:
            outcomes[n] = exc.code

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(steps))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_a_token_and_a_grant_for_two_spellings_never_both_pass(
    two_services: tuple[Service, Service, str],
) -> None:
    first, second, handle = two_services
    for n in range(ROUNDS):
        lower, upper = f"carol{n}", f"Carol{n}"
        outcomes = race(
            lambda lower=lower: first.tokens.create(lower),
            lambda upper=upper: second.execute(
                "data/grant", {"dbHandle": handle, "actor": upper, "access": "read"}, context=ALICE
            ),
        )
        assert sorted(outcomes) == ["invalid_params", "ok"], (n, outcomes)
    holders = {t.actor for t in first.tokens.list()}
    grantees = {g.actor for g in first.registry.store.list_grants()}
    names = holders | grantees
    assert len({name.casefold() for name in names}) == len(names)


def test_two_grants_for_two_spellings_never_both_pass(
    two_services: tuple[Service, Service, str],
) -> None:
    first, second, handle = two_services
    opened = first.execute("data/open", {"adapter": "sqlite", "config": {
        "path": "other.sqlite", "mode": "create"}}, context=ALICE)  # fmt: skip
    for n in range(ROUNDS):
        outcomes = race(
            lambda n=n: first.execute("data/grant", {"dbHandle": opened["dbHandle"],
                                                     "actor": f"dave{n}"}, context=ROOT),
            lambda n=n: second.execute("data/grant", {"dbHandle": handle, "actor": f"Dave{n}"},
                                       context=ROOT),
        )  # fmt: skip
        assert sorted(outcomes) == ["invalid_params", "ok"], (n, outcomes)


def test_a_grant_to_a_second_spelling_of_a_grantee_is_refused(
    two_services: tuple[Service, Service, str],
) -> None:
    _, second, handle = two_services
    second.execute("data/grant", {"dbHandle": handle, "actor": "erin"}, context=ROOT)
    with pytest.raises(DbHandlesError) as caught:
        second.execute("data/grant", {"dbHandle": handle, "actor": "Erin"}, context=ROOT)
    assert (caught.value.code, caught.value.field) == ("invalid_params", "actor")
    assert "only in case" in caught.value.message
    # The same name again is a change of that grant, not a second spelling.
    second.execute("data/grant", {"dbHandle": handle, "actor": "erin", "access": "write"},
                   context=ROOT)  # fmt: skip
