"""The web page: plain HTML, CSS and JavaScript served from the HTTP port, calling only
the public HTTP API (no CDN, no external fonts: it works air-gapped)."""
