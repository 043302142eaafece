"""Classifies through a stack's entry point until SIGTERM, then prints what happened.

Runs inside a container on the stack's own network (``docker run --network``), so the
test's load reaches nothing but the project's containers. Bounded: it stops by itself
after ``MAX_SECONDS`` or ``MAX_REQUESTS``. Prints ``answered N`` every 50 answers, and at
the end one JSON line: {"answers": N, "versions": [...], "failures": [...]}.
"""

import json
import signal
import sys
import threading
import time

import grpc
import numpy as np

from digits.service.client import ClassifierClient

MAX_SECONDS = 900.0
MAX_REQUESTS = 30_000


def main(target: str) -> None:
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    pixels = np.zeros((4, 28, 28), np.uint8)
    versions: set[int] = set()
    failures: list[str] = []
    answers = 0
    deadline = time.monotonic() + MAX_SECONDS
    with ClassifierClient(target, timeout=10) as client:
        while (not stopping.is_set() and time.monotonic() < deadline
               and answers + len(failures) < MAX_REQUESTS):
            try:
                versions.add(int(client.classify_pixels(pixels).version))
                answers += 1
                if answers % 50 == 0:
                    print(f"answered {answers}", flush=True)
            except grpc.RpcError as error:
                failures.append(f"{error.code().name}: {error.details()}")
            stopping.wait(0.05)
    print(json.dumps({"answers": answers, "versions": sorted(versions),
                      "failures": failures}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
