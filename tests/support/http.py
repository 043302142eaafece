"""curl, the HTTP client users reach for first, driving a server's HTTP port."""

import asyncio
import json
import subprocess
import tempfile
from typing import Any

from support.servers import Running


def run_curl(curl: str, *arguments: str) -> tuple[int, Any]:
    """curl's HTTP status and the JSON body it received."""
    completed = subprocess.run(
        [curl, "--silent", "--show-error", "--write-out", "\n%{http_code}", *arguments],
        capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    body, _, status = completed.stdout.rpartition("\n")
    return int(status), json.loads(body) if body else None


async def curl_json(curl: str, served: Running, path: str,
                    body: Any = None) -> tuple[int, Any]:
    """GET ``path``, or POST ``body`` as JSON; the status and the JSON answer."""
    url = f"http://{served.http_target}{path}"
    if body is None:
        return await asyncio.to_thread(run_curl, curl, url)
    with tempfile.NamedTemporaryFile("w", suffix=".json") as file:
        json.dump(body, file)
        file.flush()
        return await asyncio.to_thread(
            run_curl, curl, "--header", "Content-Type: application/json",
            "--data-binary", f"@{file.name}", url)
