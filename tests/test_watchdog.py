"""The watchdog process: it kills a silent process with its message, spares one that
reports progress, and leaves when told or when its process ends."""

import signal
import subprocess
import sys
import time
from pathlib import Path

SCRIPT = """
import sys, time
from pathlib import Path
from digits.jobs.watchdog import Watchdog
mode, scratch = sys.argv[1], Path(sys.argv[2])
scratch.mkdir()
watchdog = Watchdog(1.0, "nobody joined", leftover=scratch)
if mode == "silent":
    time.sleep(30)  # like TensorFlow waiting for a worker that never comes
elif mode == "progress":
    watchdog.alive("no step finished")
    for _ in range(20):
        time.sleep(0.1)
        watchdog.alive()
    time.sleep(30)  # then progress stops
else:
    watchdog.close()
    time.sleep(2)
print("survived", flush=True)
"""


def _run(mode: str, scratch: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", SCRIPT, mode, str(scratch)],
                            capture_output=True, text=True, timeout=60, check=False)
    return result, time.monotonic() - started


def test_a_silent_process_is_killed_with_the_message_and_its_leftover_removed(
        tmp_path: Path) -> None:
    result, seconds = _run("silent", tmp_path / "scratch")
    assert result.returncode == -signal.SIGKILL
    assert "Error: nobody joined" in result.stderr
    assert seconds < 15
    assert not (tmp_path / "scratch").exists()


def test_progress_keeps_it_alive_and_the_latest_message_is_the_one_printed(
        tmp_path: Path) -> None:
    result, seconds = _run("progress", tmp_path / "scratch")
    assert result.returncode == -signal.SIGKILL
    assert "Error: no step finished" in result.stderr
    assert "nobody joined" not in result.stderr
    assert 2.5 < seconds < 15  # two seconds of progress, then one of silence


def test_a_closed_watchdog_kills_nothing(tmp_path: Path) -> None:
    result, _ = _run("closed", tmp_path / "scratch")
    assert result.returncode == 0 and "survived" in result.stdout
    assert "Error" not in result.stderr
    assert (tmp_path / "scratch").is_dir()
