"""Rate meters, latency percentiles, node counters and the report throttle, with an explicit fake clock."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dcl_arc_ros.core.stats import LatencyTracker, NodeStats, RateMeter, ReportThrottle


def test_rate_of_a_regular_stream() -> None:
    meter = RateMeter(window_s=5.0)
    for i in range(31):
        meter.tick(10.0 + i / 30.0)
    assert meter.rate_hz(11.0) == pytest.approx(30.0)
    assert meter.total == 31


def test_rate_decays_to_zero_after_the_stream_stops() -> None:
    meter = RateMeter(window_s=2.0)
    for i in range(10):
        meter.tick(i * 0.1)
    assert meter.rate_hz(1.0) > 0.0
    assert meter.rate_hz(5.0) == 0.0


def test_rate_needs_two_events() -> None:
    meter = RateMeter()
    assert meter.rate_hz(0.0) == 0.0
    meter.tick(1.0)
    assert meter.rate_hz(1.0) == 0.0


def test_latency_percentiles_match_numpy_and_keep_only_the_newest() -> None:
    tracker = LatencyTracker(capacity=100)
    rng = np.random.default_rng(0)
    old = rng.uniform(1.0, 2.0, 50)  # seconds, pushed out by the newer ones below
    new = rng.uniform(0.001, 0.01, 100)
    for value in np.concatenate([old, new]):
        tracker.add(float(value))
    p50, p95 = tracker.percentiles_ms((50.0, 95.0))
    assert p50 == pytest.approx(np.percentile(new * 1e3, 50))
    assert p95 == pytest.approx(np.percentile(new * 1e3, 95))
    assert len(tracker) == 100


def test_latency_is_nan_before_any_sample() -> None:
    assert all(math.isnan(v) for v in LatencyTracker().percentiles_ms())


def test_node_stats_snapshot_reports_every_counter() -> None:
    stats = NodeStats(window_s=10.0)
    for i in range(11):
        stats.input_received(i * 0.1)
    for i in range(6):
        stats.output_published(i * 0.2, latency_s=0.004)
    stats.dropped_stale = 5
    stats.bad_inputs = 2
    snap = stats.snapshot(1.0)
    assert snap.input_hz == pytest.approx(10.0)
    assert snap.output_hz == pytest.approx(5.0)
    assert snap.latency_p50_ms == pytest.approx(4.0)
    assert (snap.received, snap.published, snap.dropped_stale, snap.bad_inputs) == (11, 6, 5, 2)
    values = dict(snap.as_key_values())
    assert values["dropped (stale)"] == "5"
    assert "bad inputs 2" in snap.summary()


def test_throttle_reports_distinct_problems_and_counts_repeats() -> None:
    throttle = ReportThrottle(period_s=5.0)
    assert throttle.check("wrong encoding 'rgb8'", 0.0) == (True, 0)
    assert throttle.check("empty image", 0.1) == (True, 0)
    assert throttle.check("wrong encoding 'rgb8'", 1.0) == (False, 0)
    assert throttle.check("wrong encoding 'rgb8'", 2.0) == (False, 0)
    assert throttle.check("wrong encoding 'rgb8'", 5.5) == (True, 2)
