"""A caller's images in the batching queue, the slices of them a batch takes, and delivery."""

import asyncio
from dataclasses import dataclass

import numpy as np


@dataclass(eq=False)
class QueuedRequest:
    """One caller's images, the future it awaits, and how far its rows have got."""

    pixels: np.ndarray
    deadline: float | None
    future: asyncio.Future[np.ndarray]
    arrived: float
    taken: int = 0  # rows already put into a batch (a large request spans several)
    done_rows: int = 0  # rows whose results have arrived
    output: np.ndarray | None = None
    started: bool = False  # queue wait is observed once, when its first rows run

    @property
    def size(self) -> int:
        return len(self.pixels)

    @property
    def waiting(self) -> int:
        return self.size - self.taken


@dataclass
class Slice:
    """Rows ``start:stop`` of one request, placed at ``offset`` in a batch."""

    request: QueuedRequest
    start: int
    stop: int
    offset: int

    @property
    def whole(self) -> bool:
        return self.start == 0 and self.stop == self.request.size


def batch_pixels(slices: list[Slice]) -> np.ndarray:
    """The pixels of a batch's slices, in order (no copy for one whole request)."""
    if len(slices) == 1 and slices[0].whole:
        return slices[0].request.pixels
    return np.concatenate([s.request.pixels[s.start:s.stop] for s in slices])


def latest_deadline(slices: list[Slice]) -> float | None:
    """The last of the batch's deadlines (None when any caller has none)."""
    deadlines = [piece.request.deadline for piece in slices]
    if any(deadline is None for deadline in deadlines):
        return None
    return max(deadline for deadline in deadlines if deadline is not None)


def deliver(slices: list[Slice], output: np.ndarray) -> None:
    """Give each slice its rows of the batch's output; resolve a request once all its rows
    are in."""
    for piece in slices:
        request = piece.request
        if request.future.done():  # cancelled, or an earlier part failed
            continue
        rows = output[piece.offset:piece.offset + piece.stop - piece.start]
        if piece.whole:
            request.future.set_result(rows)
            continue
        if request.output is None:
            request.output = np.empty((request.size, rows.shape[1]), dtype=rows.dtype)
        request.output[piece.start:piece.stop] = rows
        request.done_rows += len(rows)
        if request.done_rows == request.size:
            request.future.set_result(request.output)


def fail(slices: list[Slice], error: BaseException) -> None:
    """Give the batch's error to each of its callers, and only to them."""
    for piece in slices:
        if not piece.request.future.done():
            piece.request.future.set_exception(error)
