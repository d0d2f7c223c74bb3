"""A token's secret is never echoed by the CLI: error words that quote what was typed mask it."""

from __future__ import annotations

import re

__all__ = ["mask_tokens"]

#: A dbhandles token, ``dbh_<id>_<secret>`` (``security/tokens.py``), or the start of one: the
#: secret is what follows the id.
_TOKEN = re.compile(r"(dbh_[A-Za-z0-9]{1,32}_)[A-Za-z0-9_-]+")


def mask_tokens(text: str) -> str:
    """``text`` with the secret of every token in it replaced by ``***`` (the id stays, so the
    words still say which token was meant): for error words, which quote a mistyped command line
    (``jtag help --token=...``, ``jtag serve --token=...``) and may end up in logs or screenshots."""
    return _TOKEN.sub(r"\1***", text)
