"""A watchdog in a process of its own: it kills this process unless it hears from it.

Multi-worker training can wait forever inside TensorFlow: for a worker that never
joins, or a peer that hangs without dying. TensorFlow holds the interpreter while it
waits, so no thread or signal handler of ours could act; a separate process can.
(TensorFlow's own per-operation collective timeout starts a sleeping thread for every
collective operation, thousands a minute at this model's step rate, until thread
creation fails; it is not used.)
"""

import os
import subprocess
import sys
from pathlib import Path
from types import TracebackType

# Reads lines from stdin; each resets the clock, and a non-empty one is the message to
# print if the next deadline passes. End of input (closed, or the parent died) ends it.
_PROGRAM = """
import os, select, shutil, signal, sys
parent, timeout, message, leftover = int(sys.argv[1]), float(sys.argv[2]), *sys.argv[3:]
while True:
    if not select.select([sys.stdin], [], [], timeout)[0]:
        print("Error: " + message, file=sys.stderr, flush=True)
        os.kill(parent, signal.SIGKILL)
        if leftover:
            shutil.rmtree(leftover, ignore_errors=True)
        break
    line = sys.stdin.readline()
    if not line:
        break
    message = line.strip() or message
"""


class Watchdog:
    """Kills this process with SIGKILL, after printing ``message``, unless ``alive`` is
    called at least every ``timeout`` seconds; ``close`` stops it. ``leftover``, a
    directory the killed process would have removed on its way out, is removed then."""

    def __init__(self, timeout: float, message: str, leftover: Path | None = None) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-c", _PROGRAM, str(os.getpid()), str(timeout), message,
             str(leftover or "")],
            stdin=subprocess.PIPE, text=True)

    def alive(self, next_message: str = "") -> None:
        """Reset the clock; ``next_message``, if given, is printed should it run out."""
        assert self._process.stdin is not None
        self._process.stdin.write(next_message.replace("\n", " ") + "\n")
        self._process.stdin.flush()

    def close(self) -> None:
        if self._process.stdin is not None and not self._process.stdin.closed:
            self._process.stdin.close()
        self._process.wait()

    def __enter__(self) -> "Watchdog":
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()
