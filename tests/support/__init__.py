"""Helpers shared by the tests: tiny models, real servers on loopback, polling, CLI runners.

One module per kind of helper: ``models`` (tiny real SavedModels and volumes),
``servers`` (a real server on OS-picked loopback ports), ``serve_process`` (``digits
serve`` as a real process on OS-picked loopback ports), ``polling`` (waiting for a
condition, never sleeping a fixed time), ``cli`` (the ``digits`` command in-process and
as a real process), ``prometheus`` (reading metrics pages) and ``network`` (free ports).
"""
