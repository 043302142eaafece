"""Reading TensorBoard logs back with TensorBoard's own event reader."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from tensorboard.backend.event_processing import plugin_event_accumulator
from tensorboard.plugins.hparams import metadata as hparams_metadata
from tensorboard.util import tensor_util


@dataclass
class LoggedRun:
    """What one TensorBoard run directory holds, by plugin."""

    scalars: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    images: dict[str, list[int]] = field(default_factory=dict)  # tag -> steps
    hparams: dict[str, Any] = field(default_factory=dict)


def read_run(directory: Path) -> LoggedRun:
    """The scalars, image tags and hyper-parameters written directly into ``directory``."""
    accumulator = plugin_event_accumulator.EventAccumulator(
        str(directory), size_guidance={plugin_event_accumulator.TENSORS: 0})
    accumulator.Reload()
    run = LoggedRun()
    for tag in accumulator.Tags()["tensors"]:
        plugin = accumulator.SummaryMetadata(tag).plugin_data
        events = accumulator.Tensors(tag)
        if plugin.plugin_name == "scalars":
            run.scalars[tag] = [(event.step, float(tensor_util.make_ndarray(event.tensor_proto)))
                                for event in events]
        elif plugin.plugin_name == "images":
            run.images[tag] = [event.step for event in events]
        elif plugin.plugin_name == hparams_metadata.PLUGIN_NAME:
            start = hparams_metadata.parse_session_start_info_plugin_data(plugin.content)
            run.hparams = {name: json_format.MessageToDict(value)
                           for name, value in start.hparams.items()}
    return run
