"""The server: one ASGI app for HTTP commands, the ``/ws`` socket, the browser client and the dashboard."""

from __future__ import annotations

from dbhandles.server.app import create_app

__all__ = ["create_app"]
