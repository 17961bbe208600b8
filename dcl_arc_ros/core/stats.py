"""Rates, latency percentiles and drop counters: the numbers behind a node's diagnostics.

Everything here is pure and clock-free: callers pass the current time (``time.monotonic()`` in a node, a fake clock
in tests), so the arithmetic is testable without sleeping.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np


class RateMeter:
    """Events per second over a sliding time window."""

    def __init__(self, window_s: float = 5.0, max_events: int = 10_000) -> None:
        if window_s <= 0:
            raise ValueError(f"RateMeter window_s must be > 0, got {window_s}")
        self._window_s = float(window_s)
        self._times: deque[float] = deque(maxlen=max_events)
        self.total = 0

    def tick(self, now: float) -> None:
        self._times.append(float(now))
        self.total += 1

    def rate_hz(self, now: float) -> float:
        """Mean rate of the events of the last ``window_s`` seconds: (n - 1) / (newest - oldest).

        0.0 with fewer than two events in the window, so a stream that stopped reads zero after one window.
        """
        cutoff = now - self._window_s
        while self._times and self._times[0] < cutoff:
            self._times.popleft()
        if len(self._times) < 2:
            return 0.0
        span = self._times[-1] - self._times[0]
        return (len(self._times) - 1) / span if span > 0.0 else 0.0


class LatencyTracker:
    """The last ``capacity`` latencies (seconds), summarised as percentiles in milliseconds."""

    def __init__(self, capacity: int = 1000) -> None:
        if capacity < 1:
            raise ValueError(f"LatencyTracker capacity must be >= 1, got {capacity}")
        self._buffer = np.zeros(capacity, dtype=np.float64)
        self._next = 0
        self._count = 0

    def add(self, latency_s: float) -> None:
        self._buffer[self._next] = latency_s
        self._next = (self._next + 1) % self._buffer.size
        self._count = min(self._count + 1, self._buffer.size)

    def __len__(self) -> int:
        return self._count

    def percentiles_ms(self, qs: tuple[float, ...] = (50.0, 95.0)) -> tuple[float, ...]:
        """Percentiles in milliseconds; NaN for each when nothing was recorded yet."""
        if self._count == 0:
            return tuple(float("nan") for _ in qs)
        values = self._buffer[: self._count] * 1e3
        return tuple(float(v) for v in np.percentile(values, qs))


@dataclass(frozen=True)
class StatsSnapshot:
    """One reading of a node's counters, ready for a DiagnosticStatus or a log line."""

    input_hz: float
    output_hz: float
    latency_p50_ms: float
    latency_p95_ms: float
    received: int
    published: int
    dropped_stale: int  # frames replaced by a newer one before the worker got to them
    dropped_unsynced: int  # inputs discarded by the synchroniser without a partner
    bad_inputs: int  # frames rejected as malformed (encoding, size, values)
    errors: int  # frames whose processing raised an unexpected error

    def as_key_values(self) -> list[tuple[str, str]]:
        """Stable (key, value) pairs, e.g. for diagnostic_msgs/KeyValue."""
        return [
            ("input rate (Hz)", f"{self.input_hz:.2f}"),
            ("output rate (Hz)", f"{self.output_hz:.2f}"),
            ("latency p50 (ms)", f"{self.latency_p50_ms:.2f}"),
            ("latency p95 (ms)", f"{self.latency_p95_ms:.2f}"),
            ("frames received", str(self.received)),
            ("frames published", str(self.published)),
            ("dropped (stale)", str(self.dropped_stale)),
            ("dropped (unsynchronised)", str(self.dropped_unsynced)),
            ("bad inputs", str(self.bad_inputs)),
            ("processing errors", str(self.errors)),
        ]

    def summary(self) -> str:
        """A one-line human summary for the log."""
        return (
            f"in {self.input_hz:.1f} Hz, out {self.output_hz:.1f} Hz, "
            f"latency p50 {self.latency_p50_ms:.1f} ms p95 {self.latency_p95_ms:.1f} ms, "
            f"received {self.received}, published {self.published}, dropped stale {self.dropped_stale}, "
            f"unsynchronised {self.dropped_unsynced}, bad inputs {self.bad_inputs}, errors {self.errors}"
        )


@dataclass
class NodeStats:
    """The counters one perception node keeps; ``snapshot(now)`` reads them all at once."""

    window_s: float = 5.0
    latency_capacity: int = 1000
    dropped_stale: int = 0
    dropped_unsynced: int = 0
    bad_inputs: int = 0
    errors: int = 0
    _inputs: RateMeter = field(init=False)
    _outputs: RateMeter = field(init=False)
    _latency: LatencyTracker = field(init=False)

    def __post_init__(self) -> None:
        self._inputs = RateMeter(self.window_s)
        self._outputs = RateMeter(self.window_s)
        self._latency = LatencyTracker(self.latency_capacity)

    def input_received(self, now: float) -> None:
        self._inputs.tick(now)

    def output_published(self, now: float, latency_s: float) -> None:
        self._outputs.tick(now)
        self._latency.add(latency_s)

    def snapshot(self, now: float) -> StatsSnapshot:
        p50, p95 = self._latency.percentiles_ms((50.0, 95.0))
        return StatsSnapshot(
            input_hz=self._inputs.rate_hz(now),
            output_hz=self._outputs.rate_hz(now),
            latency_p50_ms=p50,
            latency_p95_ms=p95,
            received=self._inputs.total,
            published=self._outputs.total,
            dropped_stale=self.dropped_stale,
            dropped_unsynced=self.dropped_unsynced,
            bad_inputs=self.bad_inputs,
            errors=self.errors,
        )


class ReportThrottle:
    """Rate-limits repeated reports per key: the first report of a key passes, repeats within ``period_s`` are
    counted and summarised when the next report of that key passes.

    Keying by the problem text means two different problems are both reported at once, while one bad stream that
    repeats 30 times a second fills the log with one line per period.
    """

    def __init__(self, period_s: float = 5.0, max_keys: int = 256) -> None:
        if period_s < 0:
            raise ValueError(f"ReportThrottle period_s must be >= 0, got {period_s}")
        self._period_s = float(period_s)
        self._max_keys = max_keys
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def check(self, key: str, now: float) -> tuple[bool, int]:
        """(report it?, how many reports of this key were suppressed since the last one that passed)."""
        last = self._last.get(key)
        if last is not None and now - last < self._period_s:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False, 0
        if last is None and len(self._last) >= self._max_keys:
            oldest = min(self._last, key=self._last.__getitem__)
            del self._last[oldest]
            self._suppressed.pop(oldest, None)
        self._last[key] = now
        return True, self._suppressed.pop(key, 0)
