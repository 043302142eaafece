"""The benchmark's scenarios: request size, concurrency, encoding, batching switch, and
the server sent to (digits, or an external OIP v2 server: ``externals``).

Encodings: ``raw`` (digits.v1, uint8 pixels), ``png`` (digits.v1, one PNG file per
image), ``oip`` (the Open Inference Protocol v2 over gRPC, a UINT8 tensor in raw
contents, as tritonclient sends it), ``oip-http`` (the same protocol over HTTP with the
binary tensor data extension, tritonclient.http's default).
"""

from dataclasses import dataclass
from typing import Literal

Encoding = Literal["raw", "png", "oip", "oip-http"]
ENCODINGS: tuple[Encoding, ...] = ("raw", "png", "oip", "oip-http")
# Batching works the same whichever protocol a request came by: measured on and off for
# digits.v1 only.
BATCHING_OFF_ENCODINGS = ("raw", "png")
DIGITS = "digits"  # the server of the scenarios the bench starts itself


@dataclass(frozen=True)
class Scenario:
    """One load shape: ``concurrency`` clients each sending ``images_per_request`` images
    to ``server`` (digits, or the name of an external OIP v2 server)."""

    images_per_request: int
    concurrency: int
    encoding: Encoding
    batching: bool  # digits' switch; an external server batches (or not) as it is set up
    server: str = DIGITS

    @property
    def external(self) -> bool:
        return self.server != DIGITS

    @property
    def name(self) -> str:
        shape = f"{self.images_per_request}img-c{self.concurrency}-{self.encoding}"
        if self.external:
            return f"{shape}@{self.server}"
        return f"{shape}-batching-{'on' if self.batching else 'off'}"

    @property
    def label(self) -> str:
        """The table's name for it, e.g. ``1024 img x c4 oip @kserve``."""
        label = f"{self.images_per_request} img x c{self.concurrency} {self.encoding}"
        return f"{label} @{self.server}" if self.external else label


def standard_scenarios(encodings: tuple[Encoding, ...] = ENCODINGS) -> list[Scenario]:
    """The standard set: single images at concurrency 1, 16, 64 with batching on (and
    off, for digits.v1); 256 and 1,024 images at concurrency 1 and 4 (batching on); each
    encoding."""
    scenarios = []
    for encoding in encodings:
        switches = (True, False) if encoding in BATCHING_OFF_ENCODINGS else (True,)
        # On and off side by side, so the pair is measured moments apart.
        scenarios += [Scenario(1, concurrency, encoding, batching)
                      for concurrency in (1, 16, 64) for batching in switches]
        scenarios += [Scenario(size, concurrency, encoding, True)
                      for size in (256, 1024) for concurrency in (1, 4)]
    return scenarios


def parse_scenario(text: str) -> Scenario:
    """``IMAGES:CONCURRENCY:ENCODING:on|off`` (e.g. ``1:64:raw:on``) -> Scenario."""
    parts = text.split(":")
    if len(parts) != 4:
        raise ValueError(f"scenario {text!r}: expected IMAGES:CONCURRENCY:ENCODING:on|off, "
                         "for example 1:64:raw:on")
    images, concurrency, encoding, switch = parts
    if not (images.isdigit() and concurrency.isdigit()) or int(images) < 1 or (
            int(concurrency) < 1):
        raise ValueError(f"scenario {text!r}: IMAGES and CONCURRENCY must be positive "
                         "integers")
    if encoding not in ENCODINGS:
        raise ValueError(f"scenario {text!r}: ENCODING must be one of {', '.join(ENCODINGS)}")
    if switch not in ("on", "off"):
        raise ValueError(f"scenario {text!r}: the batching switch must be 'on' or 'off'")
    return Scenario(int(images), int(concurrency), encoding, switch == "on")
