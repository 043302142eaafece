"""The reliability suite, requests: malformed files fuzzed through both transports, random
model names, and a flood of huge images. Each prints its figures at the end of the run
(and into reports/reliability.json); DIGITS_RELIABILITY=long (scripts/reliability) runs
the long form."""

import asyncio
import io
import json
import random
import resource
import string
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import numpy as np
import pytest
import pytest_asyncio
from PIL import Image, ImageDraw

from digits.service.oip.tensors import serialize_bytes
from digits.v1 import classifier_pb2

from support.figures import Figures
from support.malformed_images import corpus
from support.models import install
from support.servers import Running, loopback_settings, running_server, wait_serving

pytestmark = [pytest.mark.reliability, pytest.mark.asyncio(loop_scope="module")]
WORKERS = 8


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(model_templates: Any, tmp_path_factory: pytest.TempPathFactory
                 ) -> AsyncIterator[Running]:
    models_root = tmp_path_factory.mktemp("models")
    install(model_templates.dense_a, models_root, "mnist", 1)
    async with running_server(loopback_settings(models_root)) as running:
        await wait_serving(running, "mnist")
        yield running


def infer_body(data: bytes) -> tuple[bytes, str]:
    """An OIP HTTP inference body holding one file, with the binary tensor extension."""
    raw = serialize_bytes([data])
    header = json.dumps({"inputs": [{"name": "images", "datatype": "BYTES", "shape": [1],
                                     "parameters": {"binary_data_size": len(raw)}}]}).encode()
    return header + raw, str(len(header))


async def test_fuzzed_requests_never_get_an_internal_error(
        served: Running, reliability: dict[str, Any], figures: Figures) -> None:
    count = reliability["fuzz"]
    codes: Counter[str] = Counter()
    files = iter(list(corpus(count, seed=20)))
    url = f"http://{served.http_target}/v2/models/mnist/infer"
    raw_classify = served.channel.unary_unary("/digits.v1.Classifier/Classify")
    rng = random.Random(3)
    started = time.monotonic()
    async with aiohttp.ClientSession() as session:
        async def worker(index: int) -> None:
            for sequence, (_, data) in enumerate(files):
                if sequence % 50 == 7:  # now and then, garbage where a message should be
                    try:
                        await raw_classify(rng.randbytes(rng.randint(0, 200)), timeout=10)
                        codes["grpc garbage OK"] += 1
                    except grpc.aio.AioRpcError as error:
                        codes[f"grpc garbage {error.code().name}"] += 1
                elif (index + sequence) % 2:
                    try:
                        await served.stub.Classify(classifier_pb2.ClassifyRequest(
                            images=[classifier_pb2.Image(encoded=data)]), timeout=10)
                        codes["grpc OK"] += 1
                    except grpc.aio.AioRpcError as error:
                        codes[f"grpc {error.code().name}"] += 1
                else:
                    body, length = infer_body(data)
                    async with session.post(url, data=body, headers={
                            "Inference-Header-Content-Length": length}) as response:
                        await response.read()
                        codes[f"http {response.status}"] += 1

        await asyncio.gather(*(worker(index) for index in range(WORKERS)))
    elapsed = time.monotonic() - started
    figures.add("fuzzed requests (malformed PNG/JPEG files, some garbage messages)",
                sum(codes.values()))
    figures.add("fuzzed requests by status", dict(sorted(codes.items())))
    figures.add("fuzzed requests per second", round(sum(codes.values()) / elapsed))
    assert sum(codes.values()) == count
    assert not [code for code in codes if "INTERNAL" in code or "UNKNOWN" in code
                or code.startswith("http 5")], codes
    # Alive and answering afterwards.
    assert len((await served.classify(np.zeros((1, 28, 28), np.uint8))).predictions) == 1


def random_name(rng: random.Random) -> str:
    kind = rng.randrange(5)
    if kind == 0:  # valid, but no such model
        return rng.choice(string.ascii_lowercase) + "".join(
            rng.choices(string.ascii_lowercase + string.digits + "-_", k=rng.randint(0, 62)))
    if kind == 1:
        return "".join(rng.choices(string.printable, k=rng.randint(1, 300)))
    if kind == 2:
        return "../" * rng.randint(1, 5) + "etc/passwd"
    if kind == 3:
        return "".join(chr(rng.randint(0x80, 0x2FFF)) for _ in range(rng.randint(1, 40)))
    return "x" * rng.randint(64, 2000)


def series(text: str) -> set[str]:
    return {line.split(" ")[0] for line in text.splitlines()
            if line and not line.startswith("#")}


async def test_random_model_names_create_no_series_and_no_files(
        served: Running, reliability: dict[str, Any], figures: Figures,
        tmp_path_factory: pytest.TempPathFactory) -> None:
    models_root = served.server.settings.volume.models
    files_before = sorted(models_root.rglob("*"))
    before = series(served.scrape())
    rng = random.Random(9)
    names = [random_name(rng) for _ in range(reliability["names"])]
    codes: Counter[str] = Counter()
    async with aiohttp.ClientSession() as session:
        async def worker(share: list[str]) -> None:
            for index, name in enumerate(share):
                if index % 2:
                    try:
                        await served.classify(np.zeros((1, 28, 28), np.uint8), model=name)
                        codes["grpc OK"] += 1
                    except grpc.aio.AioRpcError as error:
                        codes[f"grpc {error.code().name}"] += 1
                else:
                    path = "/v2/models/" + aiohttp.helpers.quote(name, safe="") + "/ready"
                    async with session.get(f"http://{served.http_target}{path}") as response:
                        await response.read()
                        codes[f"http {response.status}"] += 1

        await asyncio.gather(*(worker(names[i::WORKERS]) for i in range(WORKERS)))
    created = series(served.scrape()) - before
    # New series may only count the requests (a method or status code not seen before);
    # none may carry a name a client sent.
    naming = [entry for entry in created if "model=" in entry]
    figures.add("random model names sent (gRPC and HTTP)", len(names))
    figures.add("random model names by status", dict(sorted(codes.items())))
    figures.add("metric series created by them (request counts by method and code)",
                len(created))
    figures.add("of which carry a model name", len(naming))
    figures.add("files created by them", len(sorted(models_root.rglob("*"))) - len(files_before))
    assert sorted(models_root.rglob("*")) == files_before
    assert naming == [] and len(created) < 100, created
    assert all(entry.startswith("digits_request") for entry in created), created
    assert codes["grpc OK"] == 0


def palette_png(side: int) -> bytes:
    """A palette PNG with transparency, a thick stroke across it: tiny file, many pixels."""
    image = Image.new("P", (side, side), 0)
    image.putpalette([255, 255, 255, 0, 0, 0] + [0] * 762)
    ImageDraw.Draw(image).line((side // 2, side // 4, side // 2, side * 3 // 4), fill=1,
                               width=side // 12)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", transparency=0)
    return buffer.getvalue()


def rss_megabytes() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() / 2**20


async def test_huge_images_do_not_starve_small_requests(
        served: Running, figures: Figures) -> None:
    """Two requests of eight 6300x6300 palette PNGs (refused from their headers), then two of
    four 4000x4000 ones (the most allowed), while a client sends a small PNG every 100 ms."""
    small = io.BytesIO()
    Image.fromarray((np.eye(28) * 255).astype(np.uint8)).save(small, "PNG")
    rss_before, cpu_before = rss_megabytes(), time.process_time()
    outcomes: list[str] = []

    async def attack(side: int, count: int) -> None:
        request = classifier_pb2.ClassifyRequest(
            images=[classifier_pb2.Image(encoded=palette_png(side))] * count)
        try:
            await served.stub.Classify(request, timeout=2)
            outcomes.append(f"{side}px OK")
        except grpc.aio.AioRpcError as error:
            outcomes.append(f"{side}px {error.code().name}")

    latencies: list[float] = []

    async def small_requests() -> None:
        for _ in range(40):
            began = time.monotonic()
            await served.stub.Classify(classifier_pb2.ClassifyRequest(
                images=[classifier_pb2.Image(encoded=small.getvalue())]), timeout=30)
            latencies.append(time.monotonic() - began)
            await asyncio.sleep(0.1)

    async def attacks() -> None:
        await asyncio.gather(attack(6300, 8), attack(6300, 8))
        await asyncio.gather(attack(4000, 4), attack(4000, 4))

    await asyncio.gather(attacks(), small_requests())
    figures.add("huge-image requests", sorted(outcomes))
    figures.add("small requests meanwhile, p50 / max ms",
                f"{1000 * float(np.median(latencies)):.1f} / {1000 * max(latencies):.1f}")
    figures.add("CPU seconds of the attack (whole process)",
                round(time.process_time() - cpu_before, 2))
    figures.add("RSS growth, MB", round(rss_megabytes() - rss_before, 1))
    assert sorted(outcomes) == ["4000px OK"] * 2 + ["6300px INVALID_ARGUMENT"] * 2
    assert max(latencies) < 1.0
