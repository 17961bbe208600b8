"""The approximate-time synchroniser: matching within the slop, newest-wins consumption, counters, time jumps."""

from __future__ import annotations

import pytest

from dcl_arc_ros.core.sync import NS_PER_S, ApproximateTimeSync, stamp_to_ns

MS = 1_000_000


def test_stamp_to_ns_combines_seconds_and_nanoseconds() -> None:
    assert stamp_to_ns(3, 250) == 3 * NS_PER_S + 250


def test_single_stream_passes_every_item_through() -> None:
    sync: ApproximateTimeSync[str] = ApproximateTimeSync(["depth"], slop_ns=0)
    out = [sync.add("depth", t, f"d{t}") for t in (10, 5, 30)]
    assert [o["depth"].item for o in out if o] == ["d10", "d5", "d30"]
    assert sync.stats.emitted_sets == 3


def test_pairs_within_slop_are_matched_in_either_arrival_order() -> None:
    sync: ApproximateTimeSync[str] = ApproximateTimeSync(["depth", "info"], slop_ns=5 * MS)
    assert sync.add("depth", 100 * MS, "d1") is None
    match = sync.add("info", 103 * MS, "i1")
    assert match is not None
    assert (match["depth"].item, match["info"].item) == ("d1", "i1")
    assert sync.add("info", 200 * MS, "i2") is None
    match = sync.add("depth", 199 * MS, "d2")
    assert match is not None and match["info"].stamp_ns == 200 * MS


def test_items_outside_slop_are_not_matched() -> None:
    sync: ApproximateTimeSync[str] = ApproximateTimeSync(["depth", "info"], slop_ns=5 * MS)
    sync.add("depth", 100 * MS, "d")
    assert sync.add("info", 106 * MS, "i") is None
    assert sync.pending() == {"depth": 1, "info": 1}


def test_closest_partner_is_chosen_and_older_items_are_discarded() -> None:
    sync: ApproximateTimeSync[str] = ApproximateTimeSync(["rgb", "depth"], slop_ns=20 * MS, queue_size=10)
    for t in (100, 133, 166):
        sync.add("rgb", t * MS, f"rgb{t}")
    match = sync.add("depth", 160 * MS, "depth160")
    assert match is not None and match["rgb"].item == "rgb166"
    # rgb100 and rgb133 can never be matched any more: counted as unmatched, queues empty.
    assert sync.stats.unmatched == 2
    assert sync.pending() == {"rgb": 0, "depth": 0}


def test_three_streams_need_every_member_within_slop() -> None:
    sync: ApproximateTimeSync[int] = ApproximateTimeSync(["rgb", "depth", "info"], slop_ns=10 * MS)
    sync.add("rgb", 100 * MS, 1)
    sync.add("depth", 108 * MS, 2)
    assert sync.add("info", 112 * MS, 3) is None  # 112 - 100 > 10 ms across the set
    match = sync.add("rgb", 110 * MS, 4)
    assert match is not None
    assert {k: v.item for k, v in match.items()} == {"rgb": 4, "depth": 2, "info": 3}


def test_late_item_older_than_emitted_set_is_dropped_and_counted() -> None:
    sync: ApproximateTimeSync[str] = ApproximateTimeSync(["depth", "info"], slop_ns=1 * MS)
    sync.add("depth", 500 * MS, "d")
    assert sync.add("info", 500 * MS, "i") is not None
    assert sync.add("info", 400 * MS, "late") is None
    assert sync.stats.out_of_order == 1
    assert sync.pending()["info"] == 0


def test_queue_overflow_drops_the_oldest() -> None:
    sync: ApproximateTimeSync[int] = ApproximateTimeSync(["depth", "info"], slop_ns=0, queue_size=2)
    for t in (1, 2, 3):
        sync.add("depth", t, t)
    assert sync.pending()["depth"] == 2
    assert sync.stats.unmatched == 1
    assert sync.add("info", 1, 0) is None  # the item stamped 1 was evicted
    assert sync.add("info", 2, 0) is not None


def test_time_jump_back_resets_instead_of_blocking_forever() -> None:
    sync: ApproximateTimeSync[str] = ApproximateTimeSync(["depth", "info"], slop_ns=MS, jump_back_ns=NS_PER_S)
    sync.add("depth", 100 * NS_PER_S, "d")
    assert sync.add("info", 100 * NS_PER_S, "i") is not None
    # A bag loops back to t = 1 s: the pair there must still be matched.
    sync.add("depth", 1 * NS_PER_S, "d-loop")
    match = sync.add("info", 1 * NS_PER_S, "i-loop")
    assert match is not None and match["depth"].item == "d-loop"
    assert sync.stats.time_jumps == 1


@pytest.mark.parametrize(
    ("keys", "slop", "queue"),
    [([], 0, 1), (["a", "a"], 0, 1), (["a"], -1, 1), (["a"], 0, 0)],
)
def test_invalid_construction_is_rejected(keys: list[str], slop: int, queue: int) -> None:
    with pytest.raises(ValueError):
        ApproximateTimeSync(keys, slop_ns=slop, queue_size=queue)


def test_unknown_stream_key_names_the_key() -> None:
    sync: ApproximateTimeSync[int] = ApproximateTimeSync(["depth"], slop_ns=0)
    with pytest.raises(KeyError, match="rgb"):
        sync.add("rgb", 0, 1)
