"""Loopback ports for servers under test."""

import socket
from contextlib import ExitStack


def free_ports(count: int) -> list[int]:
    """Distinct loopback ports the OS says are free now."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
