"""The HTTP server: an aiohttp application on its own socket, in the gRPC server's loop."""

import socket

from aiohttp import web

from digits.service.dataplane import DataPlane
from digits.service.http_api import digits_v1, oip, openapi, tfserving
from digits.service.http_api.handling import RequestHandling
from digits.service.metrics import ServiceMetrics
from digits.service.settings import LimitSettings


class HttpServer:
    """Every HTTP route of the service; bind, start, then stop (draining)."""

    def __init__(self, dataplane: DataPlane, metrics: ServiceMetrics,
                 limits: LimitSettings) -> None:
        self.handling = RequestHandling(metrics)
        # Bodies over the limit are refused (413) before they are read whole.
        self.app = web.Application(middlewares=[self.handling.middleware],
                                   client_max_size=limits.max_message_bytes)
        oip.add_routes(self.app, dataplane)
        digits_v1.add_routes(self.app, dataplane)
        tfserving.add_routes(self.app, dataplane)
        openapi.add_route(self.app)
        self._runner = web.AppRunner(self.app, access_log=None)
        self._socket: socket.socket | None = None
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

    async def start(self, grace: float) -> None:
        """Serve on the bound socket; ``grace``: how long a stop waits for requests."""
        assert self._socket is not None, "bind() first"
        await self._runner.setup()
        await web.SockSite(self._runner, self._socket, shutdown_timeout=grace).start()

    async def stop(self) -> None:
        """Stop listening, let running requests finish (within the grace), release all."""
        await self._runner.cleanup()
        if self._socket is not None:
            self._socket.close()
