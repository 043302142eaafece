"""The service's commands: ``digits serve``, ``digits classify`` and ``digits health``.

``serve``'s options are generated from the settings (``settings.options()``), so every
setting is a flag and a DIGITS_* variable with the same help text.
"""

import asyncio
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import grpc
import numpy as np

from digits.api import IMAGE_SIZE, PIXELS_PER_IMAGE
from digits.service.settings import InvalidSettings, ServingSettings, options

Command = Callable[..., Any]
SERVER_HELP = "Server address as HOST:PORT [env: DIGITS_SERVER]."
REPLICAS_HELP = ("Server address as HOST:PORT; replicas as HOST:PORT,HOST:PORT or "
                 "dns:///NAME:PORT, each call going to the next (round-robin) "
                 "[env: DIGITS_SERVER].")
_TLS_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def _client_tls_options(command: Command) -> Command:
    """--tls-ca, --tls-cert, --tls-key and --tls-server-name, for a client command."""
    for option in reversed([
        click.option("--tls-ca", type=_TLS_FILE, envvar="DIGITS_CLIENT_TLS_CA",
                     show_envvar=True, help="Speak TLS, trusting this CA's PEM certificate."),
        click.option("--tls-cert", type=_TLS_FILE, envvar="DIGITS_CLIENT_TLS_CERT",
                     show_envvar=True, help="This client's PEM certificate (mutual TLS)."),
        click.option("--tls-key", type=_TLS_FILE, envvar="DIGITS_CLIENT_TLS_KEY",
                     show_envvar=True, help="The private key of --tls-cert."),
        click.option("--tls-server-name", default="", envvar="DIGITS_CLIENT_TLS_SERVER_NAME",
                     show_envvar=True, help="The name the server's certificate is issued "
                     "to, when the address is not it (e.g. 127.0.0.1)."),
    ]):
        command = option(command)
    return command


def _tls(values: dict[str, Any]) -> Any:
    """The client's TLS from the options (None: plaintext)."""
    from digits.service.client import ClientTls

    ca, cert, key, name = (values.pop(option) for option in
                           ("tls_ca", "tls_cert", "tls_key", "tls_server_name"))
    if bool(cert) != bool(key):
        raise click.UsageError("--tls-cert and --tls-key go together")
    if not (ca or cert):
        return None
    return ClientTls(ca=ca, cert=cert, key=key, server_name=name)


def _settings_options(command: Command) -> Command:
    """Add one click option per setting (flag, env var, default, help)."""
    for option in reversed(list(options())):
        default = option.default
        declaration = option.flag
        kind: Any = type(default)
        if isinstance(default, bool):
            declaration = f"{declaration}/--no-{declaration[2:]}"
            kind = bool
        elif isinstance(default, Path):
            kind = click.Path(path_type=Path, file_okay=False)
        command = click.option(
            declaration, option.name, type=kind, default=default, show_default=True,
            envvar=option.env_var, show_envvar=True, help=option.help,
        )(command)
    return command


@click.command()
@_settings_options
def serve(**values: Any) -> None:
    """Serve every model of the models directory over gRPC, with hot reload.

    Health: grpc.health.v1 overall ("") and per model name, NOT_SERVING until a model
    loads. SIGTERM: NOT_SERVING at once, in-flight requests drain within the grace
    period, exit 0. Metrics: http://HOST:METRICS_PORT/metrics.
    """
    from digits.service.server import serve as run_server

    try:
        settings = ServingSettings.from_options(**values)
    except InvalidSettings as error:
        raise click.UsageError(str(error)) from None
    try:
        asyncio.run(run_server(settings))
    except (OSError, ValueError) as error:  # ports, TLS files: the message names the fix
        raise click.ClickException(str(error)) from None


@click.command()
@click.option("--server", required=True, envvar="DIGITS_SERVER", help=REPLICAS_HELP)
@click.option("--model", default="", help="Model name [default: the server's default model].")
@click.option("--version", "version", type=click.IntRange(min=0), default=0,
              help="Version to pin [default: 0, the newest loaded].")
@click.option("--top-k", type=click.IntRange(min=0), default=0,
              help="Also list the K most probable labels per image.")
@click.option("--batch-size", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Images per request (large .npy files are sent in several).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=30.0,
              show_default=True, help="Deadline of each request in seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@_client_tls_options
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
def classify(server: str, model: str, version: int, top_k: int, batch_size: int,
             timeout: float, as_json: bool, files: tuple[Path, ...], **tls: Any) -> None:
    """Classify FILES: PNG/JPEG images (any size, either polarity) and .npy arrays of raw
    uint8 MNIST-form pixels ([28, 28], [N, 28, 28] or [N, 784]).

    Prints one line per image: the source, the predicted digit and its confidence.
    """
    from digits.service.client import ClassifierClient

    results = []
    try:
        client = ClassifierClient(server, timeout=timeout, tls=_tls(tls))
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--server") from None
    with client:
        try:
            for sources, request in _requests(files, batch_size, model, version, top_k):
                response = client.classify(request)
                for source, prediction in zip(sources, response.predictions, strict=True):
                    results.append(_result(source, prediction, response))
        except grpc.RpcError as error:
            raise click.ClickException(
                f"{error.code().name}: {error.details()}") from None
    if as_json:
        click.echo(json.dumps({"predictions": results}, indent=2))
        return
    for result in results:
        line = f"{result['source']}: {result['label']} (confidence {result['confidence']:.3f})"
        if result["top"]:
            line += "  top: " + ", ".join(f"{t['label']} {t['probability']:.3f}"
                                          for t in result["top"])
        click.echo(line)


@click.command()
@click.option("--server", required=True, envvar="DIGITS_SERVER", help=SERVER_HELP)
@click.option("--service", default="", help="Service to check: '' for the server as a "
              "whole, a model name, or digits.v1.Classifier.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=3.0,
              show_default=True, help="Deadline of the check in seconds.")
@_client_tls_options
def health(server: str, service: str, timeout: float, **tls: Any) -> None:
    """Check the server's grpc.health.v1 status: exit 0 when SERVING, 1 when not, 2 when
    the server cannot be reached (for container HEALTHCHECKs)."""
    from digits.service.client import ClassifierClient

    with ClassifierClient(server, timeout=timeout, tls=_tls(tls)) as client:
        try:
            status = client.health(service)
        except grpc.RpcError as error:
            code = error.code()
            if code == grpc.StatusCode.NOT_FOUND:
                click.echo(f"{service!r}: unknown service (SERVICE_UNKNOWN)")
                sys.exit(1)
            click.echo(f"{server}: {code.name}: {error.details()}",
                       err=True)
            sys.exit(2)
    click.echo(status)
    sys.exit(0 if status == "SERVING" else 1)


def _requests(files: tuple[Path, ...], batch_size: int, model: str, version: int,
              top_k: int) -> Iterator[tuple[list[str], Any]]:
    """ClassifyRequests of at most ``batch_size`` images, with each image's source name."""
    from digits.v1 import classifier_pb2

    sources: list[str] = []
    images: list[classifier_pb2.Image] = []
    for path in files:
        for source, image in _images(path):
            sources.append(source)
            images.append(image)
            if len(images) == batch_size:
                yield sources, classifier_pb2.ClassifyRequest(
                    model=model, version=version, top_k=top_k, images=images)
                sources, images = [], []
    if images:
        yield sources, classifier_pb2.ClassifyRequest(
            model=model, version=version, top_k=top_k, images=images)


def _images(path: Path) -> Iterator[tuple[str, Any]]:
    """The images of one file: one encoded image, or every image of a .npy array."""
    from digits.v1 import classifier_pb2

    if path.suffix.lower() != ".npy":
        yield str(path), classifier_pb2.Image(encoded=path.read_bytes())
        return
    pixels = load_pixel_array(path)
    for index, image in enumerate(pixels):
        yield f"{path}[{index}]", classifier_pb2.Image(pixels=image.tobytes())


def load_pixel_array(path: Path) -> np.ndarray:
    """A .npy file of raw MNIST-form pixels as uint8 [N, 28, 28]; ClickException if not."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise click.ClickException(f"{path}: not a readable .npy array ({error})") from None
    if array.dtype != np.uint8:
        integral = np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_
        if not integral or (array.size and (array.min() < 0 or array.max() > 255)):
            raise click.ClickException(
                f"{path}: {array.dtype} values; save uint8 pixels 0..255, white ink on "
                "black (for floats in [0, 1]: (x * 255).round().astype('uint8'))")
        array = array.astype(np.uint8)
    if array.shape in ((IMAGE_SIZE, IMAGE_SIZE), (PIXELS_PER_IMAGE,)):
        return array.reshape(1, IMAGE_SIZE, IMAGE_SIZE)
    if (array.ndim == 3 and array.shape[1:] == (IMAGE_SIZE, IMAGE_SIZE)) or (
            array.ndim == 2 and array.shape[1] == PIXELS_PER_IMAGE):
        return np.ascontiguousarray(array.reshape(-1, IMAGE_SIZE, IMAGE_SIZE))
    raise click.ClickException(
        f"{path}: shape {array.shape}; expected [28, 28], [N, 28, 28] or [N, 784]")


def _result(source: str, prediction: Any, response: Any) -> dict[str, Any]:
    return {
        "source": source,
        "label": prediction.label,
        "class_index": prediction.class_index,
        "confidence": prediction.confidence,
        "probabilities": list(prediction.probabilities),
        "top": [{"label": t.label, "probability": t.probability} for t in prediction.top],
        "model": response.model,
        "version": response.version,
    }
