"""Drives a digits server with Triton's own client (tritonclient) and prints what it saw.

Runs in the clients' virtual environment (tests/support/client_envs.py), never in the
project's: tritonclient pins an older protobuf. Prints one JSON object: the answers of
the calls made, or {"error": {"status": ..., "message": ...}} when the server refused.

    python triton_client.py grpc 127.0.0.1:PORT health
    python triton_client.py http 127.0.0.1:PORT metadata --model mnist
    python triton_client.py grpc 127.0.0.1:PORT infer --model mnist --pixels x.npy [--k 3]
    python triton_client.py http 127.0.0.1:PORT infer --model mnist --files a.png b.png
"""

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from tritonclient.utils import InferenceServerException, np_to_triton_dtype


def client_module(protocol: str) -> Any:
    if protocol == "grpc":
        import tritonclient.grpc as module
    else:
        import tritonclient.http as module
    return module


def health(client: Any, args: argparse.Namespace) -> dict[str, Any]:
    return {"live": client.is_server_live(), "ready": client.is_server_ready(),
            "model_ready": client.is_model_ready(args.model, args.version)}


def metadata(client: Any, args: argparse.Namespace) -> dict[str, Any]:
    server = client.get_server_metadata()
    model = client.get_model_metadata(args.model, args.version)
    if args.protocol == "grpc":  # messages there, dictionaries over HTTP
        from google.protobuf.json_format import MessageToDict

        server, model = MessageToDict(server), MessageToDict(model)
    return {"server": server, "model": model}


def infer(client: Any, args: argparse.Namespace) -> dict[str, Any]:
    module = client_module(args.protocol)
    if args.pixels:
        data = np.load(args.pixels)  # sent as its own dtype, so tests can send wrong ones
        tensor = module.InferInput("pixels", list(data.shape), np_to_triton_dtype(data.dtype))
    else:
        data = np.array([Path(name).read_bytes() for name in args.files], dtype=np.object_)
        tensor = module.InferInput("images", list(data.shape), "BYTES")
    extra = {} if args.protocol == "grpc" else {"binary_data": not args.json}
    tensor.set_data_from_numpy(data, **extra)
    if args.go:
        wait_for_go(client, args)
    outputs = None
    if args.k is not None or args.json:
        outputs = [module.InferRequestedOutput("probabilities", class_count=args.k or 0,
                                               **extra)]
    # A version label travels as a request parameter (this server's extension).
    parameters = {"version_label": args.label} if args.label else None
    result = client.infer(args.model, [tensor], model_version=args.version,
                          outputs=outputs, request_id="client-7", parameters=parameters)
    answer = result.get_response()
    if args.protocol == "grpc":
        answer = {"model_name": answer.model_name, "model_version": answer.model_version,
                  "id": answer.id}
    array = result.as_numpy("probabilities")
    values = ([item.decode() for item in array.ravel()] if array.dtype == np.object_
              else array.ravel().tolist())
    return {"model_name": answer["model_name"], "model_version": answer["model_version"],
            "id": answer.get("id", ""), "shape": list(array.shape), "values": values}


def wait_for_go(client: Any, args: argparse.Namespace) -> None:
    """Connect, say so by creating the --ready file, then send only once --go exists
    (so a test can time this request against its own)."""
    client.is_server_live()
    Path(args.ready).touch()
    give_up_at = time.monotonic() + 60
    while not Path(args.go).exists():
        if time.monotonic() > give_up_at:
            raise SystemExit("no --go file within 60 s")
        time.sleep(0.002)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("protocol", choices=["grpc", "http"])
    parser.add_argument("url")
    parser.add_argument("action", choices=["health", "metadata", "infer"])
    parser.add_argument("--model", default="mnist")
    parser.add_argument("--version", default="")
    parser.add_argument("--label", default="", help="infer: a version label to ask for")
    parser.add_argument("--pixels", help=".npy file of uint8 [N, 28, 28] pixels")
    parser.add_argument("--files", nargs="*", help="PNG or JPEG files")
    parser.add_argument("--k", type=int, help="classification extension: top k classes")
    parser.add_argument("--json", action="store_true", help="HTTP: JSON tensors, not binary")
    parser.add_argument("--ready", help="infer: a file to create once connected")
    parser.add_argument("--go", help="infer: a file to wait for before sending")
    args = parser.parse_args()
    client = client_module(args.protocol).InferenceServerClient(args.url)
    action = {"health": health, "metadata": metadata, "infer": infer}[args.action]
    try:
        answer = action(client, args)
    except InferenceServerException as error:
        answer = {"error": {"status": str(error.status()), "message": error.message()}}
    json.dump(answer, sys.stdout)


if __name__ == "__main__":
    main()
