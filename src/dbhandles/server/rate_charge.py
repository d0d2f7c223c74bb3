"""``Charge``: a command request's charge to its address's rate of refusals before authentication
(``public.PublicRate``), kept only if it was refused before its token checked."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dbhandles.server.app import ServerState

__all__ = ["Charge"]


class Charge:
    """A request's charge to its address's rate (``public.PublicRate``, the bucket of the routes
    that need no token): only a request refused before authenticating (401: no token or a bad one;
    403: another site's page) keeps it. Uncharged, ``wrk -c300`` of token-less POSTs got 8,000
    immediate 401s a second and made bob's p99 83-287 times slower; charged only once refused,
    after a token check in a worker thread, 300 connections that all found the bucket full got
    566-1514 in 6 s where it allows 180 (issue 13). So it is taken first (``taken``: by
    ``fast_command``, before anything else), and given back as soon as the token checked.

    Args:
        state: the server.
        address: the client's (``client_address``).
        taken: the request was taken from the bucket already.
    """

    def __init__(self, state: ServerState, address: str, *, taken: bool = False) -> None:
        self.rate = state.public_rate
        self.address = address
        self.taken = taken

    def passed(self) -> None:
        """Its token (or the local user's door, without one) checked: not charged."""
        if self.taken:
            self.taken = False
            self.rate.give_back(self.address)

    def settle(self, status: int, authenticated: bool) -> None:
        """The request ended with ``status``: charged if refused before authenticating (taken
        now if it was not yet: a caller other than ``fast_command``), else given back."""
        if authenticated or status not in (401, 403):
            self.passed()
        elif not self.taken:
            self.taken = True
            self.rate.take(self.address)
