"""Run an ASGI app with uvicorn on host:port or on an inherited, already-bound socket.

uvicorn's own `fd=` wraps the descriptor as an AF_UNIX socket, so asyncio never sets
TCP_NODELAY on the connections it accepts and small responses wait ~40 ms on delayed
ACKs. Wrapping the fd ourselves lets Python detect its real family (AF_INET).
"""

from __future__ import annotations

import socket
from typing import Any

import uvicorn

__all__ = ["serve"]


def serve(app: Any, *, host: str, port: int, fd: int | None, **options: Any) -> None:
    if fd is None:
        uvicorn.run(app, host=host, port=port, **options)
        return
    sock = socket.socket(fileno=fd)
    config = uvicorn.Config(app, **options)
    uvicorn.Server(config).run(sockets=[sock])
