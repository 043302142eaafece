"""The HTTP server: an aiohttp application on its own socket, in the gRPC server's loop.

The listening socket is served by asyncio directly (not an aiohttp site) so that a
connection beyond ``max_connections`` can be answered 503 and closed at once.
"""

import asyncio
import socket

from aiohttp import web

from digits.service.dataplane import DataPlane
from digits.service.http_api import digits_v1, oip, openapi, tfserving
from digits.service.http_api.handling import RequestHandling
from digits.service.metrics import ServiceMetrics
from digits.service.settings import ServingSettings
from digits.service.tls import HttpContext
from digits.service.web import routes as web_routes

_FULL = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
         b"Connection: close\r\nContent-Length: 59\r\n\r\n"
         b'{"error": "too many connections; retry with backoff soon"}')


class _Refused(asyncio.Protocol):
    """A connection over the limit: answered 503 and closed."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(_FULL)
        transport.close()


class HttpServer:
    """Every HTTP route of the service; bind, start, then stop (draining)."""

    def __init__(self, dataplane: DataPlane, metrics: ServiceMetrics,
                 settings: ServingSettings, max_connections: int) -> None:
        self.handling = RequestHandling(metrics)
        self.max_connections = max_connections
        # Bodies over the limit are refused (413) before they are read whole.
        self.app = web.Application(middlewares=[self.handling.middleware],
                                   client_max_size=settings.limits.max_message_bytes)
        oip.add_routes(self.app, dataplane)
        digits_v1.add_routes(self.app, dataplane)
        tfserving.add_routes(self.app, dataplane)
        openapi.add_route(self.app)
        web_routes.add_routes(self.app, metrics.registry)
        self._runner = web.AppRunner(
            self.app, access_log=None, shutdown_timeout=settings.network.grace_period,
            keepalive_timeout=settings.connections.idle_timeout)
        self._socket: socket.socket | None = None
        self._listener: asyncio.Server | None = None
        self.port = 0

    def bind(self, host: str, port: int) -> int:
        """Bind the listening socket (port 0: the OS picks one); returns the port."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            # Shared with other processes on the port, as gRPC's is (SO_REUSEPORT).
            self._socket = socket.create_server(
                (host, port), family=family, backlog=128,
                reuse_port=hasattr(socket, "SO_REUSEPORT"))
        except OSError as error:
            raise OSError(f"cannot listen for HTTP on {host}:{port}: "
                          f"{error.strerror or error}; pick a free port with --http-port "
                          "(or DIGITS_HTTP_PORT)") from error
        self.port = int(self._socket.getsockname()[1])
        return self.port

    @property
    def connections(self) -> int:
        """Client connections open now."""
        server = self._runner.server
        return len(server.connections) if server is not None else 0

    async def start(self, tls: HttpContext | None = None) -> None:
        """Serve on the bound socket, over TLS when given its context."""
        assert self._socket is not None, "bind() first"
        await self._runner.setup()
        server = self._runner.server
        assert server is not None

        def protocol() -> asyncio.BaseProtocol:
            if tls is not None:  # before this connection's handshake: the newest certificate
                tls.refresh()
            return server() if len(server.connections) < self.max_connections else _Refused()

        self._listener = await asyncio.get_running_loop().create_server(
            protocol, sock=self._socket, backlog=128,
            ssl=tls.context if tls is not None else None)

    async def stop(self) -> None:
        """Stop listening, let running requests finish (within the grace), release all."""
        if self._listener is not None:
            self._listener.close()
        await self._runner.cleanup()
        if self._socket is not None:
            self._socket.close()
