"""Prepare the next batch while the current one trains: one background thread, same batches.

``prefetch(batches)`` runs an iterator of batches (loading + augmentation) in a background
thread, one batch ahead of the training step (issue 25: data/compute overlap). The thread
consumes the iterator in order, exactly as a plain ``for`` loop would, so every random draw
(the shuffle permutation, the augmentation) happens in the same order from the same
generators: the batches are identical with and without prefetching, bit for bit
(``tests/data/test_prefetch.py``). NumPy and PyTorch release the GIL in their array work,
so the augmentation of batch ``i + 1`` runs while the step of batch ``i`` computes.

What changes is only *when* a draw happens: up to ``depth + 1`` batches earlier. A loop that
stops in the middle of an epoch (an error, Ctrl-C) may find the generators advanced by
those batches; ``fit`` saves their state only at the end of an epoch, when the iterator is
exhausted and the thread has finished.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from cnnlab.errors import check_int

T = TypeVar("T")

_END = object()  # the iterator is exhausted


def prefetch(batches: Iterable[T], depth: int = 1) -> Iterator[T]:
    """Iterate ``batches``, producing up to ``depth`` items ahead in a background thread.

    Args:
        batches: any iterable (e.g. a ``DataLoader`` or ``fit``'s augmented batches); it is
            iterated in ONE other thread, in order, so seeded randomness inside it repeats.
        depth: finished items kept waiting (1: the next batch is ready when the step ends).

    Yields:
        The items of ``batches``, in order. An exception raised while producing an item is
        re-raised here, at that item. Leaving the loop early (break, an error, Ctrl-C)
        stops the thread before the generator returns.

    Example:
        >>> list(prefetch(iter(range(5))))
        [0, 1, 2, 3, 4]
    """
    check_int("prefetch", "depth", depth)
    return _prefetch(batches, depth)


def _prefetch(batches: Iterable[T], depth: int) -> Iterator[T]:
    """``prefetch``'s generator: the thread starts at the first ``next``."""
    ready: queue.Queue[tuple[Any, BaseException | None]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def hand_over(item: Any, error: BaseException | None = None) -> bool:
        """Put one item in the queue; False once the consumer has gone."""
        while not stop.is_set():
            try:
                ready.put((item, error), timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in batches:
                if not hand_over(item):
                    return
            hand_over(_END)
        except BaseException as error:  # handed to the consumer, raised there
            hand_over(_END, error)

    worker = threading.Thread(target=produce, name="cnnlab-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item, error = ready.get()
            if error is not None:
                raise error
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        worker.join()
