"""Bearer tokens: actors for requests that come over the network.

A token looks like ``dbh_<id>_<secret>``. Only a SHA-256 hash of the secret is stored (in the default
database), the secret is shown once at creation, and secrets are compared in constant time. On first
start with no token, the server creates an admin token and keeps it in ``<home>/admin.token``, readable
only by its owner, so the local ``jtag`` finds it and the seed's commands keep working verbatim.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dbhandles.clock import iso_now
from dbhandles.errors import InvalidParams, NotFound, Unauthorized
from dbhandles.security.names import RESERVED_ACTORS, check_actor_name
from dbhandles.store import HandleStore, TokenRow
from dbhandles.values import json_text

__all__ = ["ADMIN_TOKEN_FILE", "DURATION_PATTERN", "Actor", "TokenManager", "parse_duration"]

ADMIN_TOKEN_FILE = "admin.token"
_TOKEN = re.compile(r"^dbh_([A-Za-z0-9]{8,32})_([A-Za-z0-9_-]{20,128})$")
#: A token lifetime (``30d``): at most 5 digits, so that now + lifetime stays a date.
DURATION_PATTERN = r"^ *(0*[1-9][0-9]{0,4}) *([smhdw]) *$"
_DURATION = re.compile(DURATION_PATTERN)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclass(frozen=True, slots=True)
class Actor:
    """Who a request runs as."""

    name: str
    is_admin: bool
    token_id: str | None = None


def parse_duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``15m``, ``90s``, ``2w`` → a timedelta (more than 0).

    Raises:
        InvalidParams: not such a duration, or 0.
    """
    match = _DURATION.fullmatch(text)
    if not match or int(match.group(1)) <= 0:
        raise InvalidParams(
            f"expires: {json_text(text, 80)} is not a duration like 30d, 12h or 15m (more than 0: a token "
            "that never expires is made by leaving expires out)",
            field="expires",
        )
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


#: Actor names only administrators may carry (``names.RESERVED_ACTORS``).
ADMIN_ACTORS = RESERVED_ACTORS


def _check_name(actor: str, admin: bool, stored: list[TokenRow], grantees: list[str]) -> None:
    """Refuse a new token for ``actor`` (an administrator's if ``admin``) given every ``stored``
    token, revoked ones included, and the names stored grants hold (``grantees``).

    Raises:
        InvalidParams: the name is an administrator's (it ever held an administrator token) and
            the new token is not, or has a live plain token and the new one is an administrator's;
            or it differs only in case (``str.casefold``) from a name that holds a token or a
            grant (a grant may name an actor before its first token).
    """
    check_actor_name(actor, reserved=admin, holders=grantees)
    for other in stored:
        if other.actor != actor and other.actor.casefold() == actor.casefold():
            raise InvalidParams(
                f"actor: {json_text(actor, 80)} differs from the existing actor {json_text(other.actor, 80)} only in case; "
                "names that differ only in case are one name to a reader (and one data space on "
                "a case-insensitive file system): use that name, or choose another",
                field="actor",
            )
        if other.actor != actor or other.is_admin == admin:
            continue
        # A name that ever held an administrator token, revoked or not, never gets a plain one:
        # what it opened, owned and granted as an administrator stays that name's, and a plain
        # token would inherit it (docs/security.md, "Tokens").
        if other.is_admin:
            raise InvalidParams(
                f"actor: {json_text(actor, 80)} is an administrator's name (it has held the administrator "
                f"token {other.token_id}); a name that was an administrator's is never given "
                "a plain token, even once that token is revoked, since what it opened and owns "
                "as an administrator stays that name's: choose another name",
                field="actor",
            )
        if other.revoked_at is None:
            raise InvalidParams(
                f"actor: {json_text(actor, 80)} already has a non-administrator token ({other.token_id}); "
                "an actor is one or the other: revoke that token first, or choose another name",
                field="actor",
            )


class TokenManager:
    """Create, list, revoke and check tokens kept in a ``HandleStore``."""

    def __init__(self, store: HandleStore, home: Path) -> None:
        self.store = store
        self.home = home
        # token → (actor, store version, expiry): a request's token is checked against the store only
        # when another process changed the store since (a revocation here clears the cache).
        self._cache: dict[str, tuple[Actor, int, str | None]] = {}

    def create(
        self, actor: str, *, expires: str | None = None, admin: bool = False
    ) -> tuple[str, TokenRow]:
        """A new token for ``actor``; returns ``(token, row)`` — the token is never shown again."""
        # Ownership, grants and data spaces key on the actor name: a name is an administrator's or
        # not, never both, or a plain token could act as the owner of what an administrator opened.
        # (The one rule of names, ``names.check_actor_name``; token holders and grantees are
        # checked below, in the store's transaction.)
        check_actor_name(actor, reserved=admin)
        lifetime = parse_duration(expires) if expires is not None else None
        token_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        expires_at = None
        if lifetime is not None:
            moment = datetime.now(UTC) + lifetime
            expires_at = moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        row = TokenRow(token_id, actor, _hash(secret), admin, iso_now(), expires_at, None)
        # Checked and stored in one store transaction: two concurrent creates for one name (one
        # an administrator's) cannot both find no token of the other kind, and a grant to a
        # second spelling of the name (``Carol`` for ``carol``) cannot slip in between.
        try:
            self.store.put_token(
                row, lambda stored, grantees: _check_name(actor, admin, stored, grantees)
            )
        except InvalidParams as exc:
            raise self._with_grants(exc, actor) from None
        return f"dbh_{token_id}_{secret}", row

    def _with_grants(self, exc: InvalidParams, actor: str) -> InvalidParams:
        """``exc`` naming the grants that hold a spelling of ``actor`` in another case (the
        database and who granted it), so the administrator can revoke them (``data/revoke``);
        ``exc`` itself when no grant is why."""
        folded = actor.casefold()
        holding = [
            g for g in self.store.list_grants()
            if g.actor != actor and g.actor.casefold() == folded
        ]  # fmt: skip
        if not holding:
            return exc
        named = "; ".join(
            f"{json_text(g.actor, 80)} on {json_text(g.db_key, 200)}, granted by "
            f"{json_text(g.granted_by, 80)}"
            for g in holding[:5]
        )
        more = f" (and {len(holding) - 5} more)" if len(holding) > 5 else ""
        return InvalidParams(
            f"{exc.message}. The name is held by grants: {named}{more}; revoke them "
            "(data/revoke on a handle of that database) to free it",
            field=exc.field,
        )

    def list(self) -> list[TokenRow]:
        return self.store.list_tokens()

    def revoke(self, token_or_id: str) -> TokenRow:
        """Revoke by id (or by the whole token).

        Raises:
            NotFound: no such token.
        """
        match = _TOKEN.match(token_or_id)
        token_id = match.group(1) if match else token_or_id
        row = self.store.get_token(token_id)
        if row is None:
            # Never echo the input: it may be a (mistyped) secret.
            raise NotFound("no such token; 'jtag token list' shows the token ids")
        self.store.revoke_token(token_id, iso_now())
        self._cache.clear()
        return row

    def authenticate(self, token: str | None) -> Actor:
        """The actor a bearer token stands for.

        Raises:
            Unauthorized: missing, malformed, unknown, wrong, expired or revoked (one message for all but
            missing, so a caller learns nothing about which).
        """
        if not token:
            raise Unauthorized("a bearer token is required: send 'Authorization: Bearer <token>'")
        version = self.store.version()
        cached = self._cache.get(token)
        if cached is not None and version is not None and cached[1] == version:
            actor, _, expires_at = cached
            if expires_at is None or expires_at >= iso_now():
                return actor
        match = _TOKEN.match(token)
        row = self.store.get_token(match.group(1)) if match else None
        expected = row.secret_hash if row is not None else _hash("")
        given = _hash(match.group(2)) if match else _hash("x")
        valid = hmac.compare_digest(expected, given)
        if (
            row is None
            or not valid
            or row.revoked_at is not None
            or (row.expires_at is not None and row.expires_at < iso_now())
        ):
            raise Unauthorized("the token is not valid (wrong, expired or revoked)")
        actor = Actor(row.actor, row.is_admin, row.token_id)
        if version is not None:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[token] = (actor, version, row.expires_at)
        return actor

    # -- the local admin token -------------------------------------------------------------------

    @property
    def admin_file(self) -> Path:
        return self.home / ADMIN_TOKEN_FILE

    def ensure_admin_token(self) -> str | None:
        """Make sure ``admin.token`` (mode 0600) holds a valid admin token: on first start, or when the
        file was deleted or its token revoked, create one. Returns the new token, else ``None``."""
        current = self.read_admin_file()
        if current is not None:
            try:
                if self.authenticate(current).is_admin:
                    return None
            except Unauthorized:
                pass
        token, _ = self.create("admin", admin=True)
        self.home.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.admin_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(token + "\n")
        return token

    def read_admin_file(self) -> str | None:
        """The local admin token, if this user can read it."""
        try:
            return self.admin_file.read_text().strip() or None
        except OSError:
            return None
