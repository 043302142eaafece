"""Connection hygiene on real sockets: idle connections closed, a cap on connections per
port (gRPC refuses, HTTP answers 503), and a server under a low open-files limit that
caps its connections so its model scans keep working under a flood."""

import asyncio
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc

from digits.v1 import classifier_pb2, classifier_pb2_grpc

from support.models import install
from support.network import free_ports
from support.polling import wait_for, wait_until
from support.prometheus import sample_value, scrape
from support.servers import loopback_settings, running_server, wait_serving

ONE = classifier_pb2.ClassifyRequest(packed_pixels=bytes(784))


def http_get(port: int, sock: socket.socket | None = None) -> tuple[bytes, socket.socket]:
    """One keep-alive GET of /v2/health/live; the raw answer and the open socket."""
    sock = sock or socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
    return sock.recv(65536), sock


async def test_an_idle_grpc_connection_is_closed(model_templates: Any,
                                                 models_root: Path) -> None:
    install(model_templates.dense_a, models_root, "mnist", 1)
    async with running_server(loopback_settings(models_root, idle_timeout=0.5)) as running:
        await wait_serving(running)
        channel = grpc.aio.insecure_channel(running.target)
        await classifier_pb2_grpc.ClassifierStub(channel).Classify(ONE, timeout=5)
        assert channel.get_state() == grpc.ChannelConnectivity.READY

        async def closed_by_the_server() -> bool:
            return channel.get_state() == grpc.ChannelConnectivity.IDLE

        await wait_for(closed_by_the_server, "the idle connection to be closed", timeout=10)
        # A client simply reconnects.
        await classifier_pb2_grpc.ClassifierStub(channel).Classify(ONE, timeout=5)
        await channel.close()


async def test_connections_over_the_cap_are_refused_on_both_ports(
        model_templates: Any, models_root: Path) -> None:
    install(model_templates.dense_a, models_root, "mnist", 1)
    async with running_server(loopback_settings(models_root, max_connections=3)) as running:
        await wait_serving(running)
        # gRPC: separate connections (no shared subchannels). The test's own channel holds
        # one of the three already: two more fit, the rest are refused.
        options = [("grpc.use_local_subchannel_pool", 1)]
        channels = [grpc.aio.insecure_channel(running.target, options=options)
                    for _ in range(4)]
        outcomes = []
        for channel in channels:
            try:
                await classifier_pb2_grpc.ClassifierStub(channel).Classify(ONE, timeout=3)
                outcomes.append("OK")
            except grpc.aio.AioRpcError as error:
                outcomes.append(error.code().name)
        assert outcomes.count("OK") == 2 and outcomes.count("UNAVAILABLE") == 2, outcomes
        for channel in channels:
            await channel.close()
        # HTTP: three keep-alive connections are served, the fourth gets 503 and is closed.
        port = running.server.http.port
        held = []
        for _ in range(3):
            answer, sock = await asyncio.to_thread(http_get, port)
            assert answer.startswith(b"HTTP/1.1 200"), answer
            held.append(sock)
        answer, refused = await asyncio.to_thread(http_get, port)
        assert answer.startswith(b"HTTP/1.1 503") and b"too many connections" in answer
        for sock in [*held, refused]:
            sock.close()


async def test_an_idle_http_connection_is_closed(model_templates: Any,
                                                 models_root: Path) -> None:
    async with running_server(loopback_settings(models_root, idle_timeout=0.3)) as running:
        answer, sock = await asyncio.to_thread(http_get, running.server.http.port)
        assert answer.startswith(b"HTTP/1.1 200")
        sock.settimeout(10)
        began = time.monotonic()
        assert await asyncio.to_thread(sock.recv, 100) == b""  # closed by the server
        assert time.monotonic() - began < 5
        sock.close()


def test_a_flood_of_idle_connections_under_a_low_files_limit_leaves_scans_working(
        model_templates: Any, models_root: Path, tmp_path: Path) -> None:
    """The server caps its connections to what 400 descriptors can hold beside a reserve;
    300 idle connections later it still loads a new version."""
    install(model_templates.dense_a, models_root, "mnist", 1)
    port, http_port, metrics_port = free_ports(3)
    log = tmp_path / "serve.log"
    command = [sys.executable, "-m", "digits", "serve", "--models", str(models_root),
               "--host", "127.0.0.1", "--port", str(port), "--http-port", str(http_port),
               "--metrics-port", str(metrics_port), "--poll-interval", "0.2"]

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (400, 400))

    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT,
                                   preexec_fn=low_limit,
                                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    flood: list[socket.socket] = []
    try:
        def loaded(count: int) -> bool:
            try:
                text = scrape(metrics_port)
            except OSError:
                return False
            return sample_value(text, "digits_model_versions_loaded",
                                {"model": "mnist"}) == count

        def exited() -> str | None:
            return None if process.poll() is None else log.read_text()

        wait_until(lambda: loaded(1), seconds=120, what="version 1", abort=exited)
        assert "accepting 72" in log.read_text()  # (400 - 256) / 2 ports
        for _ in range(300):
            flood.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        install(model_templates.dense_b, models_root, "mnist", 2)
        wait_until(lambda: loaded(2), seconds=60, what="version 2 under the flood",
                   abort=exited)
        text = scrape(metrics_port)
        assert sample_value(text, "process_max_fds") == 400
        assert (sample_value(text, "process_open_fds") or 400) < 400
    finally:
        for sock in flood:
            sock.close()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    assert process.returncode == 0
