"""What the web page relies on, over real HTTP: its files and their headers, /metrics on
the HTTP port, a version's report files, and the pixels the model received."""

import asyncio
import base64
import io
import subprocess
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
from PIL import Image

from digits.service import decoding
from digits.service.web.routes import CONTENT_SECURITY_POLICY

from support.http import curl_json, run_curl
from support.models import LABELS, install
from support.servers import Running, loopback_settings, running_server, wait_available

pytestmark = pytest.mark.asyncio(loop_scope="module")

PLOT = b"\x89PNG\r\n\x1a\n" + bytes(range(256))  # served as stored: never decoded
TABLE = b"| variant | accuracy |\n| --- | --- |\n| <b>all</b> | 0.95 |\n"


def _export_with_report(root: Path, weights: tuple[np.ndarray, np.ndarray]) -> Path:
    from digits.jobs.export import DenseStackServingModule, export_model
    from digits.v1.model_card_pb2 import ModelCard

    return export_model(DenseStackServingModule([weights], "softmax"), root, "reported",
                        ModelCard(labels=LABELS, experiment="test"),
                        extra_files={"report/curves.png": PLOT, "report/study.md": TABLE})


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(model_templates: Any, tmp_path_factory: pytest.TempPathFactory
                 ) -> AsyncIterator[Running]:
    template = _export_with_report(tmp_path_factory.mktemp("template"),
                                   model_templates.weights_a)
    models_root = tmp_path_factory.mktemp("models")
    install(template, models_root, "mnist", 1)
    install(template, models_root, "mnist", 2)
    async with running_server(loopback_settings(models_root)) as running:
        await wait_available(running, "mnist", [1, 2])
        yield running


async def fetch(served: Running, path: str, headers: dict[str, str] | None = None
                ) -> tuple[int, dict[str, str], bytes]:
    """GET ``path`` with urllib: status, headers and body (errors included)."""
    def get() -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(f"http://{served.http_target}{path}",
                                         headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()
    return await asyncio.to_thread(get)


@pytest.mark.parametrize(("path", "media_type"), [
    ("/ui/", "text/html"), ("/ui/models.html", "text/html"), ("/ui/live.html", "text/html"),
    ("/ui/style.css", "text/css"), ("/ui/js/try.js", "text/javascript"),
    ("/ui/js/prometheus.js", "text/javascript"), ("/ui/favicon.svg", "image/svg+xml")])
async def test_page_files_are_served_with_a_strict_policy(
        served: Running, path: str, media_type: str) -> None:
    status, headers, body = await fetch(served, path)
    assert status == 200 and body
    assert headers["Content-Type"].startswith(media_type)
    assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "default-src 'self'" in CONTENT_SECURITY_POLICY
    assert headers["X-Content-Type-Options"] == "nosniff"


async def test_the_root_leads_to_the_page(served: Running, curl: str) -> None:
    for path in ("/", "/ui"):
        completed = await asyncio.to_thread(
            subprocess.run, [curl, "--silent", "--head", f"http://{served.http_target}{path}"],
            capture_output=True, text=True, timeout=30, check=True)
        assert completed.stdout.startswith("HTTP/1.1 302")
        assert "Location: /ui/" in completed.stdout


@pytest.mark.parametrize("path", [
    "/ui/../pyproject.toml", "/ui/%2e%2e/%2e%2e/pyproject.toml", "/ui/js/../../routes.py",
    "/ui/routes.py", "/ui/nothing.html", "/ui/js/%2e%2e%2froutes.py", "/ui//etc/passwd"])
async def test_nothing_but_the_page_files_is_reachable(
        served: Running, curl: str, path: str) -> None:
    status, _ = await asyncio.to_thread(
        run_curl, curl, "--path-as-is", f"http://{served.http_target}{path}")
    assert status == 404


async def test_metrics_on_the_http_port_are_the_service_metrics(served: Running) -> None:
    await served.classify(np.zeros((3, 28, 28), np.uint8))
    status, headers, body = await fetch(served, "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    text = body.decode()
    assert 'digits_images_classified_total{model="mnist",version="2"}' in text
    assert "digits_batch_size_images_bucket" in text


async def test_report_files_are_served_as_exported(served: Running) -> None:
    status, headers, body = await fetch(served, "/digits/v1/models/mnist/versions/1/report/"
                                                "curves.png")
    assert (status, headers["Content-Type"], body) == (200, "image/png", PLOT)
    assert headers["X-Content-Type-Options"] == "nosniff"
    again, _, empty = await fetch(served, "/digits/v1/models/mnist/versions/1/report/"
                                          "curves.png", {"If-None-Match": headers["ETag"]})
    assert (again, empty) == (304, b"")
    status, headers, body = await fetch(served, "/digits/v1/models/mnist/versions/2/report/"
                                                "study.md")
    assert status == 200 and body == TABLE
    assert headers["Content-Type"].startswith("text/markdown")  # never rendered as HTML


@pytest.mark.parametrize(("path", "status", "message"), [
    ("mnist/versions/1/report/nothing.png", 404,
     "carries no report file 'nothing.png'; its report files: curves.png, study.md"),
    ("mnist/versions/1/report/..%2Fmodel_card.json", 404, "carries no report file"),
    ("mnist/versions/1/report/..%2Fgolden.npz", 404, "carries no report file"),
    ("mnist/versions/7/report/curves.png", 404, "has no version 7 loaded"),
    ("mnist/versions/x/report/curves.png", 400, "is not a version"),
    ("nobody/versions/1/report/curves.png", 404, "no model named 'nobody'"),
])
async def test_anything_else_is_refused_with_the_reason(
        served: Running, curl: str, path: str, status: int, message: str) -> None:
    got, answer = await curl_json(curl, served, f"/digits/v1/models/{path}")
    assert got == status and message in answer["error"], answer


async def test_a_report_file_changed_on_disk_is_refused(
        served: Running, curl: str, tmp_path: Path) -> None:
    version_dir = served.server.settings.volume.models / "mnist" / "2"
    plot = version_dir / "report" / "curves.png"
    original = plot.read_bytes()
    plot.write_bytes(original + b"tampered")
    try:
        status, answer = await curl_json(
            curl, served, "/digits/v1/models/mnist/versions/2/report/curves.png")
        assert status == 503 and "changed since export" in answer["error"], answer
        # The service goes on serving.
        assert (await served.classify(np.zeros((1, 28, 28), np.uint8))).predictions
    finally:
        plot.write_bytes(original)


def _png_of_a_digit(mnist_path: Path) -> bytes:
    digit = np.load(mnist_path)["x_test"][7]
    buffer = io.BytesIO()
    # Dark ink on light paper, larger and off-centre: preprocessing has work to do.
    canvas = Image.new("L", (120, 90), 255)
    canvas.paste(Image.fromarray(255 - digit).resize((56, 56)), (50, 20))
    canvas.save(buffer, "PNG")
    return buffer.getvalue()


async def test_the_model_input_is_what_preprocessing_made(
        served: Running, curl: str, mnist_path: Path) -> None:
    png = _png_of_a_digit(mnist_path)
    raw = np.random.default_rng(5).integers(0, 256, (28, 28), dtype=np.uint8)
    status, answer = await curl_json(curl, served, "/digits/v1/models/mnist:classify", {
        "images": [{"encoded": base64.b64encode(png).decode()},
                   {"pixels": base64.b64encode(raw.tobytes()).decode()}],
        "return_model_input": True})
    assert status == 200, answer
    received = [np.frombuffer(base64.b64decode(p["model_input"]), np.uint8).reshape(28, 28)
                for p in answer["predictions"]]
    budget = decoding.Budget(10**8, 10**8)
    expected, _ = decoding.decode_image(png, "test", budget)
    np.testing.assert_array_equal(received[0], expected)
    np.testing.assert_array_equal(received[1], raw)
    assert received[0].sum() > 0


async def test_the_model_input_is_only_sent_when_asked(served: Running) -> None:
    pixels = np.random.default_rng(6).integers(0, 256, (2, 28, 28), dtype=np.uint8)
    plain = await served.classify(pixels)
    assert all(not prediction.model_input for prediction in plain.predictions)
    asked = await served.classify(pixels, return_model_input=True)
    assert [p.model_input for p in asked.predictions] == [image.tobytes() for image in pixels]
    assert [p.probabilities for p in asked.predictions] == [
        p.probabilities for p in plain.predictions]
