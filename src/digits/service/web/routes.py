"""Routes of the web page: its static files under ``/ui/``, and ``/metrics`` for its live
panel (the same text Prometheus scrapes from the metrics port).

The static files are read once at start-up into a fixed table, so a request can only
ever name one of them: no path from a request reaches the file system.
"""

from importlib import resources

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
# Same origin only; images may also be data: and blob: URLs (a photo's preview, the
# drawn canvas); nothing may frame the page.
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' data: blob:; "
                           "object-src 'none'; base-uri 'none'; form-action 'none'; "
                           "frame-ancestors 'none'")
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Pages change with the package; revalidation is cheap (they are small).
    "Cache-Control": "no-cache",
}


def static_files() -> dict[str, tuple[bytes, str]]:
    """Every file of the page, by its path under /ui/: (contents, media type)."""
    root = resources.files(__package__).joinpath("static")
    files: dict[str, tuple[bytes, str]] = {}
    pending = [("", root)]
    while pending:
        prefix, directory = pending.pop()
        for entry in directory.iterdir():
            if entry.is_dir():
                pending.append((f"{prefix}{entry.name}/", entry))
                continue
            suffix = "." + entry.name.rsplit(".", 1)[-1]
            if suffix in MEDIA_TYPES:
                files[prefix + entry.name] = (entry.read_bytes(), MEDIA_TYPES[suffix])
    return files


def add_routes(app: web.Application, registry: CollectorRegistry) -> None:
    """Serve the page under /ui/ (``/`` leads there) and the metrics at /metrics."""
    files = static_files()

    async def page(request: web.Request) -> web.Response:
        path = request.match_info.get("path") or "index.html"
        found = files.get(path)
        if found is None:
            raise web.HTTPNotFound(reason="no such page")
        data, media_type = found
        return web.Response(body=data, headers={**HEADERS, "Content-Type": media_type})

    async def home(request: web.Request) -> web.Response:
        # Returned, not raised: raised HTTP errors become JSON error bodies.
        return web.Response(status=302, headers={"Location": "/ui/"})

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry),
                            headers={"Content-Type": CONTENT_TYPE_LATEST,
                                     "Cache-Control": "no-store"})

    app.router.add_get("/", home)
    app.router.add_get("/ui", home)
    app.router.add_get("/ui/", page)
    app.router.add_get("/ui/{path:[A-Za-z0-9_/-]+\\.[a-z]+}", page)
    app.router.add_get("/metrics", metrics)
