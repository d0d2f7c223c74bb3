"""Long commands (export, copy, import) re-check their caller's access at every batch boundary.

A command is authorised once, before its handler runs; a job may then run for minutes. A change of
access meanwhile (``data/revoke``, a narrower ``data/grant``, a closed handle, a revoked token) bumps
the access generation (``security/generation.py``). ``AccessWatch`` looks at the generation between
two batches, which costs nothing while it does not move; when it moved, it asks again what the
dispatcher asked (the token, each handle by its id, ``policy.authorize`` for each operation), and a
refusal stops the command there with the refusal's own code (``unauthorized``, ``handle_not_found``,
``access_denied``, ``permission_denied``) and a message that says the access changed while it ran.

Through a restricted handle (``security.redaction.restricted``) the decision is on what each
collection reaches in its database (a policy, a trigger, a view's tables), which another tool may
change with no access change here: every batch asks again there, and the adapter checks it again
in the batch's own transaction (``adapters.reach_guard``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from pydantic import BaseModel, ConfigDict

from dbhandles.clock import iso_now
from dbhandles.context import Context
from dbhandles.errors import DbHandlesError, Unauthorized
from dbhandles.security.policy import authorize
from dbhandles.security.redaction import restricted

if TYPE_CHECKING:
    from dbhandles.registry import HandleEntry
    from dbhandles.service import Service

__all__ = ["AccessWatch", "Use"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Use:
    """One right a long command relies on: ``operation`` on ``collection`` through ``entry``."""

    entry: HandleEntry
    operation: str
    collection: str


@dataclass(frozen=True, slots=True)
class _Asked:
    """The command as ``policy.authorize`` sees it (``policy.Authorizable``)."""

    name: str
    operation: str
    admin_only: bool = False


class _Collection(BaseModel):
    model_config = ConfigDict(defer_build=True)  # made only once access changed: built then

    collection: str


class AccessWatch:
    """Call it at each batch boundary; it raises once the caller lost a right the command uses.

    Args:
        service: whose access generation, handles, tokens and policy decide.
        context: who runs the command.
        command: the command's wire name, for messages.
        uses: the rights the command relies on (each handle is looked up again by its id).
    """

    def __init__(
        self, service: Service, context: Context, command: str, uses: Sequence[Use]
    ) -> None:
        self.service, self.context, self.command = service, context, command
        self.uses = tuple(uses)
        self._generation = service.registry.access_generation.current()
        #: A restricted handle's reach may change with no access change (module docstring).
        self._always = any(restricted(use.entry) for use in self.uses)

    def __call__(self) -> None:
        """Raises:
        Unauthorized: the caller's token was revoked or has expired.
        HandleNotFound, AccessDenied, PermissionDenied: a handle was closed, or a right withdrawn.
        """
        current = self.service.registry.access_generation.current()
        if current == self._generation and not self._always:
            return
        try:
            self._check()
        except DbHandlesError as exc:
            exc.message = (
                f"{self.command} stopped: access changed while it ran ({exc.message}); what was "
                "done before stays, nothing more is read or written"
            )
            exc.args = (exc.message,)
            raise
        self._generation = current

    def chain(self, inner: Callable[[T], None] | None) -> Callable[[T], None]:
        """The callback a loop calls after each batch: ``inner`` (progress, a job's cancel), then
        the check, so nothing of the next batch is read or written once access is gone."""

        def step(value: T) -> None:
            if inner is not None:
                inner(value)
            self()

        return step

    def _check(self) -> None:
        context = self.context
        token_id = context.token_id
        if token_id is not None:
            row = self.service.tokens.store.get_token(token_id)
            if (
                row is None
                or row.revoked_at is not None
                or (row.expires_at is not None and row.expires_at < iso_now())
            ):
                raise Unauthorized("the token is not valid (wrong, expired or revoked)")
        registry = self.service.registry
        for use in self.uses:
            # By its id, never by an alias: a re-pointed alias does not move a running command.
            entry = registry.resolve_for(use.entry.handle, context.actor, context.is_admin)
            authorize(_Asked(self.command, use.operation), _Collection(collection=use.collection),
                      context, entry, self.service.access)  # fmt: skip
