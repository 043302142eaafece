"""TLS and mutual TLS on both ports, with throwaway certificates: TLS works, plaintext and
certificate-less clients are refused, a rotated certificate reaches new connections."""

import asyncio
import json
import socket
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from digits.service.client import ClassifierClient, ClientTls

from support.certificates import Authority, Issued
from support.cli import digits_cli
from support.models import install
from support.polling import wait_for
from support.servers import Running, loopback_settings, running_server


@pytest.fixture
def authority(tmp_path: Path) -> Authority:
    return Authority(tmp_path / "pki")


def tls_settings(models_root: Path, server: Issued, client_ca: Path | None = None) -> Any:
    return loopback_settings(models_root, tls_cert=str(server.cert), tls_key=str(server.key),
                             tls_client_ca=str(client_ca or ""))


def classify(running: Running, tls: ClientTls | None) -> int:
    """Images answered by a fresh client over TLS (or plaintext)."""
    with ClassifierClient(running.target, timeout=5, attempts=1, tls=tls) as client:
        return len(client.classify_pixels(np.zeros((2, 28, 28), np.uint8)).predictions)


def https_get(running: Running, ca: Path, client: Issued | None = None) -> int:
    context = ssl.create_default_context(cafile=str(ca))
    if client is not None:
        context.load_cert_chain(client.cert, client.key)
    url = f"https://localhost:{running.server.http.port}/v2/health/ready"
    with urllib.request.urlopen(url, timeout=5, context=context) as response:
        return int(response.status)


def peer_certificate(port: int, ca: Path, alpn: str) -> bytes:
    """The certificate a new connection to ``port`` is shown (DER)."""
    context = ssl.create_default_context(cafile=str(ca))
    context.set_alpn_protocols([alpn])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as secured:
        certificate = secured.getpeercert(binary_form=True)
    assert certificate is not None
    return certificate


async def serving_over_tls(running: Running, ca: Path, client: Issued | None = None) -> None:
    tls = ClientTls(ca=ca, cert=client.cert if client else None,
                    key=client.key if client else None, server_name="localhost")

    async def serving() -> bool:
        with ClassifierClient(running.target, timeout=5, tls=tls) as health:
            try:
                return await asyncio.to_thread(health.health) == "SERVING"
            except grpc.RpcError:
                return False

    await wait_for(serving, "the server to serve over TLS")


async def test_both_ports_speak_tls_and_refuse_plaintext(
        authority: Authority, model_templates: Any, models_root: Path) -> None:
    install(model_templates.dense_a, models_root, "mnist", 1)
    server = authority.issue("localhost")
    async with running_server(tls_settings(models_root, server)) as running:
        await serving_over_tls(running, authority.cert)
        tls = ClientTls(ca=authority.cert, server_name="localhost")
        assert await asyncio.to_thread(classify, running, tls) == 2
        with pytest.raises(grpc.RpcError) as raised:
            await asyncio.to_thread(classify, running, None)
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
        assert await asyncio.to_thread(https_get, running, authority.cert) == 200
        plain = f"http://127.0.0.1:{running.server.http.port}/v2/health/ready"
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            await asyncio.to_thread(urllib.request.urlopen, plain, None, 5)
        stranger = Authority(authority.folder / "other", "someone else")
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            await asyncio.to_thread(https_get, running, stranger.cert)


async def test_mutual_tls_requires_a_client_certificate_from_the_ca(
        authority: Authority, model_templates: Any, models_root: Path) -> None:
    install(model_templates.dense_a, models_root, "mnist", 1)
    server, client = authority.issue("localhost"), authority.issue("a-client", client=True)
    async with running_server(tls_settings(models_root, server, authority.cert)) as running:
        await serving_over_tls(running, authority.cert, client)
        with_certificate = ClientTls(ca=authority.cert, cert=client.cert, key=client.key,
                                     server_name="localhost")
        assert await asyncio.to_thread(classify, running, with_certificate) == 2
        without = ClientTls(ca=authority.cert, server_name="localhost")
        with pytest.raises(grpc.RpcError) as raised:
            await asyncio.to_thread(classify, running, without)
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
        assert await asyncio.to_thread(https_get, running, authority.cert, client) == 200
        with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
            await asyncio.to_thread(https_get, running, authority.cert)
        impostor = Authority(authority.folder / "other", "someone else").issue(
            "impostor", client=True)
        with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
            await asyncio.to_thread(https_get, running, authority.cert, impostor)


async def test_a_rotated_certificate_reaches_new_connections_on_both_ports(
        authority: Authority, model_templates: Any, models_root: Path) -> None:
    install(model_templates.dense_a, models_root, "mnist", 1)
    first = authority.issue("localhost")
    async with running_server(tls_settings(models_root, first)) as running:
        await serving_over_tls(running, authority.cert)
        ports = {"grpc": (running.port, "h2"), "http": (running.server.http.port, "http/1.1")}
        tls = ClientTls(ca=authority.cert, server_name="localhost")
        with ClassifierClient(running.target, timeout=5, tls=tls) as kept:
            await asyncio.to_thread(kept.health)
            for port, alpn in ports.values():
                assert await asyncio.to_thread(peer_certificate, port, authority.cert,
                                               alpn) == first.der
            second = authority.issue("localhost")  # the same files, a new certificate
            assert second.der != first.der
            for name, (port, alpn) in ports.items():
                seen = await asyncio.to_thread(peer_certificate, port, authority.cert, alpn)
                assert seen == second.der, name
            assert await asyncio.to_thread(kept.health) == "SERVING"  # the old connection


async def test_the_commands_take_the_client_tls_options(
        authority: Authority, model_templates: Any, models_root: Path, tmp_path: Path) -> None:
    install(model_templates.dense_a, models_root, "mnist", 1)
    server, client = authority.issue("localhost"), authority.issue("cli", client=True)
    np.save(tmp_path / "zeros.npy", np.zeros((3, 28, 28), np.uint8))
    async with running_server(tls_settings(models_root, server, authority.cert)) as running:
        await serving_over_tls(running, authority.cert, client)
        options = ["--server", running.target, "--tls-ca", str(authority.cert),
                   "--tls-cert", str(client.cert), "--tls-key", str(client.key),
                   "--tls-server-name", "localhost"]
        healthy = await asyncio.to_thread(digits_cli, "health", *options)
        assert (healthy.exit_code, healthy.output.strip()) == (0, "SERVING")
        answered = await asyncio.to_thread(digits_cli, "classify", *options, "--json",
                                           str(tmp_path / "zeros.npy"))
        assert answered.exit_code == 0, answered.output
        assert len(json.loads(answered.output)["predictions"]) == 3
        refused = await asyncio.to_thread(digits_cli, "health", "--server", running.target,
                                          "--timeout", "2")
        assert refused.exit_code == 2


def test_bad_tls_settings_name_the_fix(tmp_path: Path) -> None:
    result = digits_cli("serve", "--tls-cert", str(tmp_path / "cert.pem"))
    assert result.exit_code == 2 and "tls_cert and tls_key go together" in result.output
    result = digits_cli("serve", "--tls-cert", str(tmp_path / "c.pem"), "--tls-key",
                        str(tmp_path / "k.pem"), "--port", "0", "--http-port", "0",
                        "--metrics-port", "0", "--models", str(tmp_path))
    assert result.exit_code == 1 and f"TLS file {tmp_path / 'c.pem'} does not exist" in (
        result.output)
    (tmp_path / "c.pem").write_text("not a certificate")
    (tmp_path / "k.pem").write_text("not a key")
    result = digits_cli("serve", "--tls-cert", str(tmp_path / "c.pem"), "--tls-key",
                        str(tmp_path / "k.pem"), "--port", "0", "--http-port", "0",
                        "--metrics-port", "0", "--models", str(tmp_path))
    assert result.exit_code == 1 and "not a PEM certificate and its key" in result.output
