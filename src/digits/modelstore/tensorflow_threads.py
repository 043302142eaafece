"""TensorFlow's own thread pools, sized before the first model loads.

TensorFlow runs each operation (a matrix product) on an intra-op pool and independent
operations side by side on an inter-op pool, both one thread per core by default. It fixes
both when its runtime starts, so a server sizes them before it loads a model, as TensorFlow
Serving's ``--tensorflow_intra_op_parallelism`` does.
"""

import logging

log = logging.getLogger(__name__)


def configure_threads(intra_op: int, inter_op: int) -> None:
    """Size the intra-op and inter-op pools; 0 keeps TensorFlow's choice (one per core).

    Raises ValueError naming the fix when TensorFlow already runs in this process with
    other sizes.
    """
    if not intra_op and not inter_op:
        return  # nothing to set: importing TensorFlow can wait for the first model
    import tensorflow as tf

    threading = tf.config.threading
    pools = (("intra_op_threads", intra_op, threading.get_intra_op_parallelism_threads,
              threading.set_intra_op_parallelism_threads),
             ("inter_op_threads", inter_op, threading.get_inter_op_parallelism_threads,
              threading.set_inter_op_parallelism_threads))
    for name, wanted, current, resize in pools:
        if not wanted or current() == wanted:
            continue
        try:
            resize(wanted)
        except RuntimeError:  # TensorFlow's runtime has started: its pools are fixed
            raise ValueError(
                f"{name} {wanted}: TensorFlow has already started in this process with "
                f"{_size(current())} and cannot resize its pools; set it before the first "
                "model loads") from None
    log.info("TensorFlow pools: intra-op %s, inter-op %s",
             *(_size(current()) for _, _, current, _ in pools))


def _size(threads: int) -> str:
    return {0: "one thread per core", 1: "1 thread"}.get(threads, f"{threads} threads")
