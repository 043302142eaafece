"""The server's settings: one typed object of groups, each handed whole to its owner.

Every field of every group is a command-line option and a DIGITS_* variable of the same
name (``max_batch_size``: ``--max-batch-size``, ``DIGITS_MAX_BATCH_SIZE``). Each group
checks its own values when it is built; ``ServingSettings`` checks the one rule that
spans two groups. ``ServingSettings.from_options`` builds the whole from option values
and reports every problem at once.
"""

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from digits.service.settings_groups import (
    BatchingSettings,
    ConnectionSettings,
    InvalidSettings,
    LimitSettings,
    NetworkSettings,
    TlsSettings,
    VolumeSettings,
)

__all__ = ["BatchingSettings", "ConnectionSettings", "InvalidSettings", "LimitSettings",
           "NetworkSettings", "Option", "ServingSettings", "TlsSettings", "VolumeSettings",
           "env_var", "flag", "options"]

ENV_PREFIX = "DIGITS_"


GROUPS = {"network": NetworkSettings, "connections": ConnectionSettings,
          "tls": TlsSettings, "volume": VolumeSettings, "batching": BatchingSettings,
          "limits": LimitSettings}


@dataclass(frozen=True)
class ServingSettings:
    """Everything ``digits serve`` can be told; the defaults suit one container."""

    network: NetworkSettings = field(default_factory=NetworkSettings)
    connections: ConnectionSettings = field(default_factory=ConnectionSettings)
    tls: TlsSettings = field(default_factory=TlsSettings)
    volume: VolumeSettings = field(default_factory=VolumeSettings)
    batching: BatchingSettings = field(default_factory=BatchingSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)

    def __post_init__(self) -> None:
        # Each group checked itself; this is the one rule spanning two of them.
        if self.limits.max_images_per_request > self.batching.max_queue_images:
            raise InvalidSettings([
                f"max_images_per_request ({self.limits.max_images_per_request}) must not "
                f"exceed max_queue_images ({self.batching.max_queue_images}), or such "
                "requests never fit"])

    @classmethod
    def from_options(cls, **values: Any) -> "ServingSettings":
        """Settings from option values by option name (``batching``, ``max_batch_size``, ...);
        options not given keep their defaults. Raises InvalidSettings naming every problem."""
        return cls().replace(**values)

    def replace(self, **values: Any) -> "ServingSettings":
        """A copy with the given options changed, checked like a new one."""
        unknown = set(values) - {option.name for option in options()}
        if unknown:
            raise TypeError(f"unknown settings: {', '.join(sorted(unknown))}")
        groups, problems = {}, []
        for group in GROUPS:
            changes = {option.field: values[option.name] for option in options()
                       if option.group == group and option.name in values}
            try:
                groups[group] = dataclasses.replace(getattr(self, group), **changes)
            except InvalidSettings as error:  # collected, so one run names every problem
                problems += error.problems
        if problems:
            raise InvalidSettings(problems)
        return ServingSettings(**groups)

    def option_values(self) -> dict[str, Any]:
        """Every option's value by option name."""
        return {option.name: getattr(getattr(self, option.group), option.field)
                for option in options()}


@dataclass(frozen=True)
class Option:
    """One setting as the command line and the environment see it."""

    name: str  # option name: the flag without dashes, underscores for dashes
    group: str  # attribute of ServingSettings holding it
    field: str  # attribute of that group
    default: Any
    help: str

    @property
    def flag(self) -> str:
        return flag(self.name)

    @property
    def env_var(self) -> str:
        return env_var(self.name)


def options() -> Iterator[Option]:
    """Every setting, group by group, in declaration order."""
    for group, kind in GROUPS.items():
        for setting in dataclasses.fields(kind):
            yield Option(setting.metadata.get("option") or setting.name, group, setting.name,
                         setting.default, setting.metadata["help"])


def env_var(name: str) -> str:
    """The environment variable of an option: ``max_batch_size`` -> DIGITS_MAX_BATCH_SIZE."""
    return ENV_PREFIX + name.upper()


def flag(name: str) -> str:
    """The command-line flag of an option: ``max_batch_size`` -> --max-batch-size."""
    return "--" + name.replace("_", "-")
