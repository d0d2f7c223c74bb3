"""The settings as their documentation shows them: ``jtag help serve``, docs/cli.md and the README's
settings table are generated from this (``scripts/generate-docs.py``), read from the field metadata
of ``Settings`` (``settings.setting``)."""

from __future__ import annotations

from dataclasses import dataclass, fields

from dbhandles.settings import Settings
from dbhandles.settings_checks import BOUNDS, allowed_text

__all__ = ["SETTINGS_HELP", "SettingDoc", "setting_docs"]


@dataclass(frozen=True, slots=True)
class SettingDoc:
    """One setting as the documentation shows it."""

    name: str
    env: str
    default: str
    help: str


def _shown(name: str, value: object) -> str:
    if name.endswith("_bytes") and isinstance(value, int) and value and not value % 2**20:
        return f"{value // 2**20} MiB"
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _with_allowed(name: str, help: str, default: object) -> str:
    """``help``, and for a number setting what it allows (``settings_checks.allowed_text``)."""
    if name not in BOUNDS:
        return help
    allowed = allowed_text(name, isinstance(default, int), most=False)
    return f"{help} Allowed: {allowed}."


def setting_docs() -> list[SettingDoc]:
    """Every setting, in declaration order, from the field metadata of ``Settings``."""
    defaults = Settings()
    return [
        SettingDoc(
            name=f.name,
            env=f.metadata["env"],
            default=f.metadata["shown"] or _shown(f.name, getattr(defaults, f.name)),
            help=_with_allowed(f.name, f.metadata["help"], getattr(defaults, f.name)),
        )
        for f in fields(Settings)
    ]


#: ``{field name: help}`` (with the variable), for callers that want one line per setting.
SETTINGS_HELP: dict[str, str] = {
    f.name: f"{f.metadata['help']} Env {f.metadata['env']}." for f in fields(Settings)
}
