"""Keeps loaded models out of the garbage collector's full collections.

A serving process holds some 320,000 long-lived Python objects, TensorFlow's own plus
about 4,000 per loaded version. CPython's full (generation 2) collection walked all of
them every few seconds under load, a 100-160 ms pause of the whole server, which is what
set the p99 latency of small requests. Frozen objects are skipped by every collection,
so after a version loads the heap is collected once and frozen; before a version's
objects can be reclaimed the heap is unfrozen, collected and frozen again.
"""

import gc
import logging
import time

log = logging.getLogger(__name__)


def refreeze() -> None:
    """Collect the whole heap, then freeze what survives (call after a load or unload).

    Unfreezing first lets an unloaded model's reference cycles be collected; freezing
    afterwards keeps the models still loaded out of later collections. This holds the
    GIL for one full collection (170-180 ms here), once per load or unload.
    """
    started = time.perf_counter()
    gc.unfreeze()
    unreachable = gc.collect()
    gc.freeze()
    log.debug("heap frozen: %d objects, %d unreachable collected, %.0f ms",
              gc.get_freeze_count(), unreachable, 1000 * (time.perf_counter() - started))


def thaw() -> None:
    """Give every frozen object back to the collector (when the server stops)."""
    gc.unfreeze()
