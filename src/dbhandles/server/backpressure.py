"""Backpressure: what a client has not read yet bounds what the server computes for it.

Two bounds, for HTTP connections and WebSockets alike:

* **In the kernel.** Linux lets a socket's send buffer grow to ``tcp_wmem``'s maximum (4 MiB here):
  a client that pipelines requests and never reads got about 4 MB of answers computed ahead before
  the transport's own buffer filled and the server noticed (measured: 4 of 40 pipelined 1 MB
  answers with a default client socket). ``limit_kernel_unsent`` sets ``TCP_NOTSENT_LOWAT`` on every
  connection ``jtag serve`` accepts: the kernel takes at most ``KERNEL_UNSENT_BYTES`` that are not
  sent yet (what is in flight to a reading client is not capped, so throughput is not either), and
  the rest stays in asyncio's transport buffer, where ``pause_writing`` sees it (1 of 40).
* **In the server.** An HTTP connection runs its next pipelined request only once the answer
  before it was handed to the transport and the transport is below its high-water mark
  (``connections.limited_protocol``); a WebSocket reads its next message, and its transport reads
  from the kernel at all, only while its unsent answers and events are at most ``WS_UNSENT_BYTES``
  and few of its requests are unanswered (``ws_flow.ReadGate``).
"""

from __future__ import annotations

import asyncio
import fcntl
import socket
import struct

__all__ = [
    "KERNEL_UNSENT_BYTES",
    "PIPELINE_PARSED_AHEAD",
    "PIPELINE_UNSENT_BYTES",
    "WS_UNSENT_BYTES",
    "kernel_unsent",
    "limit_kernel_unsent",
]

#: Bytes of a connection's output not sent yet that the kernel may hold (``TCP_NOTSENT_LOWAT``):
#: asyncio's own high-water mark for the transport buffer.
KERNEL_UNSENT_BYTES = 64 * 1024
#: Bytes of an HTTP connection's answers not sent yet (the kernel's and the transport's) past which
#: its next request is neither read nor run (``connections.limited_protocol``). ``TCP_NOTSENT_LOWAT``
#: bounds only when the kernel wakes the server, not what it takes: a client that never reads
#: (SO_RCVBUF 2 KB, 50 requests pipelined) had every small answer (a 429) taken by the kernel, its
#: next request read and answered, 400 such connections a load on the loop for ever (issue 13).
PIPELINE_UNSENT_BYTES = 16 * 1024
#: Pipelined requests of one HTTP connection parsed and queued behind the one running; what it sent
#: past them waits unparsed, as the bytes it came as, and reading pauses (``connections._parse``).
PIPELINE_PARSED_AHEAD = 4
#: ``SIOCOUTQNSD`` (Linux): bytes of a socket's send queue not sent yet.
_SIOCOUTQNSD = 0x894B
#: Characters of a WebSocket's answers and events not yet handed to its transport past which the
#: server reads no more of its messages (until the client reads).
WS_UNSENT_BYTES = 64 * 1024


def limit_kernel_unsent(transport: asyncio.BaseTransport) -> bool:
    """Set ``TCP_NOTSENT_LOWAT`` to ``KERNEL_UNSENT_BYTES`` on ``transport``'s socket; whether it
    could be (not on a Unix socket, nor where the option does not exist)."""
    option = getattr(socket, "TCP_NOTSENT_LOWAT", None)
    sock = transport.get_extra_info("socket")
    if option is None or sock is None:
        return False
    try:
        sock.setsockopt(socket.IPPROTO_TCP, option, KERNEL_UNSENT_BYTES)
    except OSError:
        return False
    return True


def kernel_unsent(transport: asyncio.BaseTransport) -> int:
    """Bytes of ``transport``'s output not sent yet: its own buffer's and the kernel's (Linux's
    ``SIOCOUTQNSD``; elsewhere, or on a socket that says nothing, the transport's alone)."""
    size = transport.get_write_buffer_size() if isinstance(transport, asyncio.WriteTransport) else 0
    sock = transport.get_extra_info("socket")
    if sock is None:
        return size
    try:
        out = fcntl.ioctl(sock.fileno(), _SIOCOUTQNSD, b"\0\0\0\0")
    except (OSError, ValueError):
        return size
    return size + int(struct.unpack("i", out)[0])
