"""Training one Keras model on several workers with ``MultiWorkerMirroredStrategy``.

Every worker holds a full copy of the model and takes its share of each global batch;
after each step the gradients are summed across workers (all-reduce), so the copies stay
identical. Keras 3's ``model.fit`` fails under this strategy (TensorFlow 2.21), hence
the short training loop below: one ``strategy.run`` per step, Keras for the model, the
loss and the optimiser.

A worker that dies makes the others fail within seconds, with a message: TensorFlow's
coordination service notices its missing heartbeats. A worker that never joins, or
hangs alive, is caught by a watchdog: no progress within ``--worker-timeout`` ends the
run with a message instead of a wait without end.
"""

import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from digits.jobs.cluster import TF_CONFIG, Cluster
from digits.jobs.data import Split
from digits.jobs.tracking import RunLog, learning_rate
from digits.jobs.watchdog import Watchdog

if TYPE_CHECKING:
    from digits.jobs.pipeline import Run

log = logging.getLogger(__name__)

_VALIDATION_CHUNK = 1000


class WorkerFailed(RuntimeError):
    """Training stopped because a worker failed; nothing was exported."""


class WorkerFinished(Exception):
    """This worker's part is done; the chief (worker 0) writes the reports and exports."""


@dataclass(frozen=True)
class Trainable:
    """What the loop trains: the model fed each batch, and the optimiser stepping it."""

    model: Any  # called with training=True on each worker's share of a batch
    optimizer: Any


def strategy(cluster: Cluster) -> Any:
    """Join the cluster: a ``MultiWorkerMirroredStrategy`` once every worker is there
    (TensorFlow waits for them without a limit: see ``fit_on_workers``)."""
    import tensorflow as tf

    os.environ[TF_CONFIG] = cluster.tf_config()
    joined = tf.distribute.MultiWorkerMirroredStrategy()
    log.info("%s: all %d workers joined", cluster, cluster.size)
    return joined


def train(joined: Any, cluster: Cluster, trainable: Trainable, evaluated: Any,
          train_split: Split, validation: Split, *, epochs: int, global_batch_size: int,
          seed: int, run_log: RunLog | None,
          on_step: Callable[[], None]) -> tuple[dict[str, list[float]], float]:
    """Train for ``epochs``; return Keras-style history and seconds (as ``fit`` does).

    ``evaluated`` is the model scored on ``validation`` after each epoch (the classifier
    without training-only layers). Each worker scores it on its own: the copies agree.
    ``on_step`` is called after every step (the watchdog's sign of progress).
    """
    import tensorflow as tf

    if global_batch_size % cluster.size:
        raise ValueError(f"the batch size {global_batch_size} must divide evenly among "
                         f"{cluster.size} workers")
    steps = len(train_split) // global_batch_size
    if steps == 0:
        raise ValueError(f"{len(train_split)} training images make no full batch of "
                         f"{global_batch_size}: train on more images")
    # One iterator for the whole run: a new one per epoch would retrace the step
    # function every epoch (seconds each, and memory that is never given back).
    iterator = iter(_distributed_batches(joined, train_split, global_batch_size, seed))
    step = _train_step(joined, trainable, global_batch_size)
    summed = _sum_across_workers(joined)
    history: dict[str, list[float]] = {}
    started = time.monotonic()
    try:
        for epoch in range(1, epochs + 1):
            totals = np.zeros(2)
            for _ in range(steps):
                totals += step(iterator).numpy()
                on_step()
            losses, correct = summed(totals)
            figures = {"loss": losses / steps, "accuracy": correct / (steps * global_batch_size),
                       **_validation_figures(evaluated, validation),
                       "learning_rate": learning_rate(trainable.optimizer)}
            for key, value in figures.items():
                history.setdefault(key, []).append(value)
            log.info("%s, epoch %d/%d: %s", cluster, epoch, epochs,
                     ", ".join(f"{key} {value:.4g}" for key, value in figures.items()))
            if run_log is not None:
                run_log.epoch(epoch, figures)
        _average_across_workers(joined, evaluated.non_trainable_variables)
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
            tf.errors.AbortedError, tf.errors.CancelledError) as error:
        # TensorFlow's message spans many lines; the one naming a task says which failed.
        lines = [line.strip() for line in (error.message or str(error)).splitlines()
                 if line.strip()] or [""]
        reason = next((line for line in lines if "task" in line), lines[0])
        raise WorkerFailed(
            f"{cluster}: training stopped because another worker failed or stopped "
            f"answering ({type(error).__name__}: {reason}); nothing was exported: restart "
            "every worker") from error
    return history, time.monotonic() - started


def _distributed_batches(joined: Any, split: Split, global_batch_size: int, seed: int) -> Any:
    """Shuffled global batches without end, each worker receiving its own slice of every
    batch.

    Every worker shuffles identically (same seed) and keeps its share of each batch, so
    together they see each image once per epoch; partial batches are dropped so every
    worker runs the same number of steps.
    """
    import tensorflow as tf

    dataset = (tf.data.Dataset.from_tensor_slices((split.images, split.labels))
               .shuffle(len(split), seed=seed, reshuffle_each_iteration=True)
               .batch(global_batch_size, drop_remainder=True)
               .repeat()  # reshuffled on each pass: one pass is one epoch
               .map(lambda images, labels: (tf.cast(images, tf.float32) / 255.0, labels))
               .prefetch(2))
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA)
    return joined.experimental_distribute_dataset(dataset.with_options(options))


def _train_step(joined: Any, trainable: Trainable, global_batch_size: int) -> Callable[..., Any]:
    """One synchronous step on every worker: [this worker's share of the global mean loss,
    its correct predictions]."""
    import keras
    import tensorflow as tf

    variables = trainable.model.trainable_variables

    def replica_step(images: Any, labels: Any) -> tuple[Any, Any]:
        with tf.GradientTape() as tape:
            probabilities = trainable.model(images, training=True)
            per_image = keras.losses.sparse_categorical_crossentropy(labels, probabilities)
            # Divided by the global batch: the all-reduced sum is the global mean.
            loss = tf.nn.compute_average_loss(per_image, global_batch_size=global_batch_size)
        trainable.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables,
                                                strict=True))
        hits = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(probabilities, axis=1),
                                              tf.cast(labels, tf.int64)), tf.float32))
        return loss, hits

    @tf.function
    def step(iterator: Any) -> Any:
        # This worker's own share: the figures are summed across workers once an epoch,
        # not every step (each exchange costs a round trip).
        loss, hits = joined.run(replica_step, args=next(iterator))
        return tf.stack([joined.experimental_local_results(loss)[0],
                         joined.experimental_local_results(hits)[0]])

    return step


def _validation_figures(model: Any, split: Split) -> dict[str, float]:
    """Loss and accuracy of ``model`` on ``split`` in inference mode, on this worker."""
    import keras

    probabilities = np.concatenate([
        keras.ops.convert_to_numpy(model(split.images[start:start + _VALIDATION_CHUNK]
                                         .astype(np.float32) / 255.0, training=False))
        for start in range(0, len(split), _VALIDATION_CHUNK)])
    picked = probabilities[np.arange(len(split)), split.labels]
    return {"val_loss": float(-np.mean(np.log(np.clip(picked, 1e-7, 1.0)))),
            "val_accuracy": float(np.mean(probabilities.argmax(axis=1) == split.labels))}


def _sum_across_workers(joined: Any) -> Callable[[np.ndarray], np.ndarray]:
    """A function summing a small float vector over all workers (one all-reduce)."""
    import tensorflow as tf

    @tf.function
    def all_reduce(values: Any) -> Any:
        return joined.reduce(tf.distribute.ReduceOp.SUM,
                             joined.run(lambda: tf.identity(values)), axis=None)

    return lambda values: all_reduce(tf.constant(values, tf.float64)).numpy()


def _average_across_workers(joined: Any, variables: list[Any]) -> None:
    """Give every worker the mean of ``variables`` over all workers.

    BatchNorm's moving statistics are updated by each worker from its own share of the
    batch (synchronising the batch statistics every step would cost a dozen round trips a
    step); averaging them once at the end leaves every worker's copy identical. It also
    makes every worker wait until all have finished training.
    """
    import tensorflow as tf

    @tf.function
    def mean_of_all() -> Any:
        own = joined.run(lambda: [tf.identity(variable) for variable in variables]
                         or [tf.zeros(())])
        return [joined.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)
                for value in own]

    for variable, value in zip(variables, mean_of_all(), strict=False):
        variable.assign(value)


def weights_fingerprint(model: Any) -> str:
    """sha256 over every weight's bytes: equal on two workers only if their copies are."""
    digest = hashlib.sha256()
    for weights in model.get_weights():
        digest.update(np.ascontiguousarray(weights).tobytes())
    return digest.hexdigest()


def fit_on_workers(job: "Run", build: Callable[[], tuple[Any, Trainable]],
                   rebuild: Callable[[], Any], train_split: Split, validation: Split, *,
                   epochs: int, batch_size: int) -> tuple[Any, dict[str, list[float]], float]:
    """Join the job's cluster, train, and return (model, history, seconds) on the chief.

    ``build`` makes (classifier, what to train) inside the strategy's scope; ``rebuild``
    makes an empty classifier outside it, which receives the trained weights, so the
    chief exports an ordinary model. Other workers raise ``WorkerFinished``, leaving
    nothing behind.
    """
    cluster = job.settings.cluster
    assert cluster is not None, "fit_on_workers needs JobSettings.cluster"
    timeout = job.settings.worker_timeout
    try:
        with Watchdog(timeout, f"{cluster}: not every worker joined within {timeout:.0f} s; "
                      f"start all {cluster.size} workers ({','.join(cluster.workers)}) with "
                      "the same --workers list, each with its own --worker-index, and check "
                      "that each can reach the others' ports",
                      leftover=None if cluster.is_chief else job.report_dir) as watchdog:
            joined = strategy(cluster)
            watchdog.alive(f"{cluster}: no training step finished within {timeout:.0f} s "
                           "(--worker-timeout): a worker hangs or the network between them "
                           "fails; nothing was exported: restart every worker")
            with joined.scope():
                model, trainable = build()
            history, seconds = train(joined, cluster, trainable, model, train_split,
                                     validation, epochs=epochs, global_batch_size=batch_size,
                                     seed=job.settings.seed,
                                     run_log=job.log if cluster.is_chief else None,
                                     on_step=watchdog.alive)
    finally:
        if not cluster.is_chief:  # its report directory was scratch
            shutil.rmtree(job.report_dir, ignore_errors=True)
    log.info("%s: weights sha256 %s", cluster, weights_fingerprint(model))
    if not cluster.is_chief:
        raise WorkerFinished(f"{cluster}: trained {epochs} epochs in {seconds:.0f} s; "
                             f"worker 0 ({cluster.workers[0]}) reports and exports")
    exported = rebuild()
    exported.set_weights(model.get_weights())
    return exported, history, seconds
