"""TensorBoard logs of a training run, so runs can be compared without opening JSON files.

Each run logs into ``<report dir>/tensorboard``, laid out as Keras's own TensorBoard
callback does it: per-epoch curves in ``train/`` and ``validation/`` under the same tags
(``epoch_loss``, ``epoch_accuracy``), so TensorBoard draws them on one chart. The run's
own directory holds its hyper-parameters (HParams plugin), its final test figures and
its report plots as images. ``tensorboard --logdir REPORTS`` shows every run.

Writers open on first use, so a run that fails before training leaves no event files,
and TensorFlow is imported only when something is written.
"""

import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TENSORBOARD_DIRNAME = "tensorboard"
# Keras's TensorBoard callback names: dashboards built for it read ours too.
TRAIN_RUN, VALIDATION_RUN = "train", "validation"
EPOCH_TAG_PREFIX = "epoch_"
TEST_TAG_PREFIX = "test/"
# History keys with this prefix are validation figures (Keras's convention).
_VALIDATION_PREFIX = "val_"

HParamValue = bool | int | float | str


class RunLog:
    """The TensorBoard session of one trained model: curves, test figures, plots, hparams."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._writers: dict[str, Any] = {}

    def child(self, name: str) -> "RunLog":
        """A session of its own below this one (one per model of a study)."""
        return RunLog(self.directory / name)

    def epoch(self, epoch: int, figures: Mapping[str, float]) -> None:
        """Log one epoch's figures (Keras history keys; ``val_*`` go to validation)."""
        import tensorflow as tf

        for key, value in figures.items():
            run, name = ((VALIDATION_RUN, key.removeprefix(_VALIDATION_PREFIX))
                         if key.startswith(_VALIDATION_PREFIX) else (TRAIN_RUN, key))
            with self._writer(run).as_default():
                tf.summary.scalar(EPOCH_TAG_PREFIX + name, float(value), step=epoch)
        self.flush()

    def finish(self, hyperparameters: Mapping[str, HParamValue], test: Mapping[str, float],
               step: int, images: Mapping[str, Path] = {}) -> None:
        """Log the run's hyper-parameters, final test figures and report plots; close."""
        import tensorflow as tf
        from tensorboard.plugins.hparams import api as hparams_api

        with self._writer("").as_default():
            hparams_api.hparams(dict(hyperparameters))
            for name, value in test.items():
                tf.summary.scalar(TEST_TAG_PREFIX + name, float(value), step=step)
            for name, path in images.items():
                if path.is_file():
                    image = tf.io.decode_png(path.read_bytes(), channels=3)
                    tf.summary.image(name, image[tf.newaxis], step=step)
        self.close()
        log.info("TensorBoard logs in %s", self.directory)

    def flush(self) -> None:
        for writer in self._writers.values():
            writer.flush()

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()

    def _writer(self, run: str) -> Any:
        if run not in self._writers:
            import tensorflow as tf

            self._writers[run] = tf.summary.create_file_writer(str(self.directory / run))
        return self._writers[run]


def keras_callback(run_log: RunLog) -> Any:
    """A Keras callback logging each epoch's figures and the optimiser's learning rate."""
    import keras

    class EpochLogger(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: Mapping[str, float] | None = None) -> None:
            figures = {key: value for key, value in (logs or {}).items()
                       if key != "learning_rate"}
            figures["learning_rate"] = learning_rate(self.model.optimizer)
            # Keras counts epochs from 0; the histories and plots count from 1.
            run_log.epoch(epoch + 1, figures)

    return EpochLogger()


def learning_rate(optimizer: Any) -> float:
    """The optimiser's current step size (a schedule's value at the current step)."""
    import keras

    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


def run_hyperparameters(config: Mapping[str, Any]) -> dict[str, HParamValue]:
    """What the HParams table shows of a run (from its config.json): its experiment, seed,
    data limit, number of workers and every hyper-parameter."""
    settings = config["settings"]
    return {"experiment": config["experiment"], "seed": settings["seed"],
            "train_limit": settings["train_limit"] or 0,
            "workers": len((settings.get("cluster") or {}).get("workers", [None])),
            **flat_hyperparameters(config["hyperparameters"])}


def flat_hyperparameters(config: Mapping[str, Any], prefix: str = "") -> dict[str, HParamValue]:
    """A nested configuration as HParams values: ``a.b`` keys, lists as text, no None."""
    flat: dict[str, HParamValue] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = dataclasses.asdict(value)
        if isinstance(value, Mapping):
            flat.update(flat_hyperparameters(value, f"{name}."))
        elif isinstance(value, bool | int | float | str):
            flat[name] = value
        elif value is not None:
            flat[name] = str(list(value) if isinstance(value, tuple) else value)
    return flat
