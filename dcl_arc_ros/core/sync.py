"""Approximate-time synchronisation of several input streams by their header stamps.

``message_filters`` is not installable from PyPI, so this is a small, pure replacement with the one policy our nodes
need: **newest match wins**. Each stream keeps a short queue of stamped items. When an item arrives, the synchroniser
looks, in every other stream, for the item whose stamp is closest to the new one; if the whole set spans at most
``slop_ns`` it is emitted, and everything at or before the matched stamps is discarded (an older set can never be
wanted once a newer one has been emitted, and keeping them would only add latency).

Items that fall out of a queue without ever being matched are counted in ``SyncStats.unmatched`` so a node can say
"your RGB and depth stamps never agree within the slop" instead of silently producing nothing.

A stamp more than ``jump_back_ns`` older than the last emitted set means time went backwards (a looping bag, a
reset simulation): the queues are cleared and matching starts again.

Stamps are integer nanoseconds (``sec * 10**9 + nanosec``); the synchroniser never looks at a clock, so it behaves the
same with simulated time and with bag replay. It is not thread-safe: callers serialise access (the ROS base node
holds a lock around it).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")

NS_PER_S = 1_000_000_000


def stamp_to_ns(sec: int, nanosec: int) -> int:
    """A ``builtin_interfaces/Time`` as integer nanoseconds."""
    return int(sec) * NS_PER_S + int(nanosec)


@dataclass(frozen=True)
class Stamped(Generic[T]):
    """One item of one stream, with its stamp in nanoseconds."""

    stamp_ns: int
    item: T


@dataclass
class SyncStats:
    """Counters of what the synchroniser did with its inputs."""

    received: int = 0  # items added, all streams
    emitted_sets: int = 0  # complete sets handed out
    unmatched: int = 0  # items discarded without being part of an emitted set
    out_of_order: int = 0  # items older than the last emitted set (discarded at once)
    time_jumps: int = 0  # times the stamps jumped back by more than jump_back_ns and the queues were reset


class ApproximateTimeSync(Generic[T]):
    """Match items of ``keys`` streams whose stamps lie within ``slop_ns`` of each other.

    ``add(key, stamp_ns, item)`` returns the matched set as ``{key: Stamped}`` when the new item completes one, else
    ``None``. With a single stream every item is its own set (a pass-through), so a node can use one code path whether
    or not it synchronises.
    """

    def __init__(
        self, keys: Sequence[Hashable], *, slop_ns: int, queue_size: int = 10, jump_back_ns: int = NS_PER_S
    ) -> None:
        if len(keys) == 0:
            raise ValueError("ApproximateTimeSync needs at least one stream key, got none")
        if len(set(keys)) != len(keys):
            raise ValueError(f"ApproximateTimeSync stream keys must be unique, got {list(keys)!r}")
        if slop_ns < 0:
            raise ValueError(f"ApproximateTimeSync slop_ns must be >= 0, got {slop_ns}")
        if queue_size < 1:
            raise ValueError(f"ApproximateTimeSync queue_size must be >= 1, got {queue_size}")
        self._keys: tuple[Hashable, ...] = tuple(keys)
        self._slop_ns = int(slop_ns)
        self._queues: dict[Hashable, deque[Stamped[T]]] = {k: deque() for k in self._keys}
        self._queue_size = queue_size
        self._jump_back_ns = int(jump_back_ns)
        self._last_emitted_ns: int | None = None
        self.stats = SyncStats()

    @property
    def keys(self) -> tuple[Hashable, ...]:
        return self._keys

    @property
    def slop_ns(self) -> int:
        return self._slop_ns

    def pending(self) -> Mapping[Hashable, int]:
        """How many unmatched items each stream currently holds."""
        return {k: len(q) for k, q in self._queues.items()}

    def add(self, key: Hashable, stamp_ns: int, item: T) -> dict[Hashable, Stamped[T]] | None:
        if key not in self._queues:
            raise KeyError(f"unknown stream {key!r}; this synchroniser has {list(self._keys)!r}")
        self.stats.received += 1
        stamp_ns = int(stamp_ns)
        if self._last_emitted_ns is not None and stamp_ns < self._last_emitted_ns - self._jump_back_ns:
            # Time jumped back (a bag restarted, simulated time was reset): start over instead of waiting forever.
            self.clear()
            self.stats.time_jumps += 1
        if self._last_emitted_ns is not None and len(self._keys) > 1 and stamp_ns < self._last_emitted_ns:
            # Older than a set we already emitted: it can never be part of a newer set.
            self.stats.out_of_order += 1
            self.stats.unmatched += 1
            return None
        new = Stamped(stamp_ns, item)
        if len(self._keys) == 1:
            self.stats.emitted_sets += 1
            self._last_emitted_ns = stamp_ns
            return {key: new}

        queue = self._queues[key]
        queue.append(new)
        if len(queue) > self._queue_size:
            queue.popleft()
            self.stats.unmatched += 1

        match: dict[Hashable, Stamped[T]] = {key: new}
        for other in self._keys:
            if other == key:
                continue
            candidates = self._queues[other]
            if not candidates:
                return None
            match[other] = min(candidates, key=lambda s: abs(s.stamp_ns - stamp_ns))
        stamps = [s.stamp_ns for s in match.values()]
        if max(stamps) - min(stamps) > self._slop_ns:
            return None
        self._consume(match)
        self.stats.emitted_sets += 1
        self._last_emitted_ns = min(stamps)
        return match

    def clear(self) -> None:
        """Forget every queued item (e.g. after a jump back in time during bag replay)."""
        for queue in self._queues.values():
            self.stats.unmatched += len(queue)
            queue.clear()
        self._last_emitted_ns = None

    def _consume(self, match: Mapping[Hashable, Stamped[Any]]) -> None:
        for k, chosen in match.items():
            queue = self._queues[k]
            kept: deque[Stamped[T]] = deque()
            for s in queue:
                if s is chosen:
                    continue
                if s.stamp_ns <= chosen.stamp_ns:
                    self.stats.unmatched += 1
                else:
                    kept.append(s)
            self._queues[k] = kept
