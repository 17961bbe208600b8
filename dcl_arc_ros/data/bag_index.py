"""Random access to the frames of one or many rosbag2 bags, through an index built once and cached next to each bag.

A sample is one message of the *anchor* topic (the sensor depth image by default). Every other topic contributes
the message whose stamp (see :func:`dcl_arc_ros.data.bags.message_key`) is nearest to the anchor's, if it lies within
``max_offset_s``; generated bags share stamps exactly, recordings of a real camera pair by nearest stamp.

The index records, per sample and topic, the record (log) time of the matching message, so a sample is fetched by
reading only the storage chunks around that time. It is saved as ``<bag>.index.npz`` beside the bag directory and
rebuilt automatically when the bag's files change (size or modification time) or the options differ; when the
folder is read-only the index stays in memory. Only numpy here: the torch wrappers are in
:mod:`dcl_arc_ros.data.torch_datasets`.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
from rosbags.rosbag2 import Reader

from dcl_arc_ros.data import bags
from dcl_arc_ros.data.errors import BagError, BagIndexError

INDEX_VERSION: Final = 1
INDEX_SUFFIX: Final = ".index.npz"
MISSING: Final = -1


def find_bags(paths: str | Path | Sequence[str | Path]) -> list[Path]:
    """Bag directories from bag paths or folders of bags (one level deep, sorted; partial bags are skipped)."""
    items = [paths] if isinstance(paths, str | Path) else list(paths)
    found: list[Path] = []
    for item in items:
        path = Path(item)
        if (path / "metadata.yaml").is_file():
            found.append(path)
        elif path.is_dir():
            children = sorted(
                p for p in path.iterdir() if (p / "metadata.yaml").is_file() and not p.name.startswith(".")
            )
            if not children:
                raise BagIndexError(f"{path} holds no rosbag2 bag (no */metadata.yaml)")
            found.extend(children)
        else:
            raise BagIndexError(f"{path} is neither a rosbag2 bag nor a folder of bags")
    return found


def index_path_for(bag: Path) -> Path:
    return bag.parent / f"{bag.name}{INDEX_SUFFIX}"


def _fingerprint(bag: Path) -> str:
    files = sorted(p for p in bag.iterdir() if p.is_file())
    return json.dumps([(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files])


@dataclass(frozen=True)
class SingleBagIndex:
    """The index of one bag: ``log_times[i, j]`` is the record time of topic ``topics[j]`` for sample ``i``."""

    bag: Path
    topics: tuple[str, ...]
    msgtypes: tuple[str, ...]
    stamps: np.ndarray  # (N,) int64 anchor stamps
    log_times: np.ndarray  # (N, T) int64, MISSING where the topic has no match

    def __len__(self) -> int:
        return int(self.stamps.shape[0])


def _match_nearest(anchor: np.ndarray, keys: np.ndarray, values: np.ndarray, slop_ns: int) -> np.ndarray:
    """For each anchor key, the value of the nearest ``keys`` entry within ``slop_ns``, else MISSING."""
    out = np.full(anchor.shape, MISSING, dtype=np.int64)
    if keys.size == 0:
        return out
    order = np.argsort(keys, kind="stable")
    keys, values = keys[order], values[order]
    right = np.clip(np.searchsorted(keys, anchor), 0, keys.size - 1)
    left = np.clip(right - 1, 0, keys.size - 1)
    pick = np.where(np.abs(keys[left] - anchor) <= np.abs(keys[right] - anchor), left, right)
    ok = np.abs(keys[pick] - anchor) <= slop_ns
    out[ok] = values[pick[ok]]
    return out


def build_single_index(bag: Path, *, anchor: str, topics: Sequence[str], slop_ns: int) -> SingleBagIndex:
    """Scan ``bag`` once and match every topic to the anchor messages."""
    keys: dict[str, list[int]] = {t: [] for t in topics}
    times: dict[str, list[int]] = {t: [] for t in topics}
    with bags.open_bag(bag) as reader:
        conns = {c.topic: c for c in reader.connections if c.topic in keys}
        if anchor not in conns:
            have = sorted(c.topic for c in reader.connections)
            raise BagIndexError(f"{bag} has no anchor topic {anchor!r}; it has {have}")
        present = tuple(t for t in topics if t in conns)
        for connection, log_time, data in reader.messages(connections=[conns[t] for t in present]):
            keys[connection.topic].append(bags.message_key(connection.msgtype, data, log_time))
            times[connection.topic].append(log_time)
    anchor_keys = np.asarray(keys[anchor], dtype=np.int64)
    order = np.argsort(anchor_keys, kind="stable")
    anchor_keys = anchor_keys[order]
    columns = []
    for topic in present:
        if topic == anchor:
            columns.append(np.asarray(times[anchor], dtype=np.int64)[order])
        else:
            columns.append(
                _match_nearest(
                    anchor_keys, np.asarray(keys[topic], np.int64), np.asarray(times[topic], np.int64), slop_ns
                )
            )
    log_times = np.stack(columns, axis=1) if columns else np.zeros((anchor_keys.size, 0), np.int64)
    return SingleBagIndex(
        bag=bag,
        topics=present,
        msgtypes=tuple(conns[t].msgtype for t in present),
        stamps=anchor_keys,
        log_times=log_times,
    )


def _options_key(anchor: str, topics: Sequence[str], slop_ns: int) -> str:
    return json.dumps({"version": INDEX_VERSION, "anchor": anchor, "topics": list(topics), "slop_ns": slop_ns})


def load_or_build_index(
    bag: Path, *, anchor: str, topics: Sequence[str], slop_ns: int, cache: bool = True
) -> SingleBagIndex:
    """The cached index of ``bag`` when it is current, else a freshly built one (saved when ``cache``)."""
    path = index_path_for(bag)
    options = _options_key(anchor, topics, slop_ns)
    fingerprint = _fingerprint(bag)
    if cache and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data["options"]) == options and str(data["fingerprint"]) == fingerprint:
                    return SingleBagIndex(
                        bag=bag,
                        topics=tuple(str(t) for t in data["topics"]),
                        msgtypes=tuple(str(t) for t in data["msgtypes"]),
                        stamps=data["stamps"].astype(np.int64),
                        log_times=data["log_times"].astype(np.int64).reshape(-1, len(data["topics"])),
                    )
        except (OSError, KeyError, ValueError):
            pass  # unreadable or old: rebuild below
    index = build_single_index(bag, anchor=anchor, topics=topics, slop_ns=slop_ns)
    if cache:
        with contextlib.suppress(OSError):  # read-only folder: keep the index in memory only
            fd, tmp = tempfile.mkstemp(prefix=f".{bag.name}-", suffix=".npz", dir=bag.parent)
            try:
                with os.fdopen(fd, "wb") as handle:
                    np.savez(
                        handle,
                        options=np.array(options),
                        fingerprint=np.array(fingerprint),
                        topics=np.array(index.topics, dtype=str),
                        msgtypes=np.array(index.msgtypes, dtype=str),
                        stamps=index.stamps,
                        log_times=index.log_times,
                    )
                os.replace(tmp, path)
            finally:
                Path(tmp).unlink(missing_ok=True)
    return index


class BagIndex:
    """A random-access sequence of :class:`dcl_arc_ros.data.bags.FrameRecord` over one or many bags.

    Safe to use from DataLoader worker processes: open readers are not pickled, each process opens its own.
    """

    def __init__(
        self,
        paths: str | Path | Sequence[str | Path],
        *,
        anchor_topic: str = bags.DEPTH_IMAGE,
        topics: Sequence[str] | None = None,
        max_offset_s: float = 0.015,
        cache: bool = True,
        remap: Mapping[str, str] | None = None,
    ) -> None:
        """``topics`` and ``anchor_topic`` use the canonical names of :data:`dcl_arc_ros.data.bags.TOPICS`; ``remap``
        maps a recording's own names onto them, e.g. ``{"/camera/camera/depth/image_rect_raw": bags.DEPTH_IMAGE}``
        for realsense-ros 4.x, or ``{"/camera/aligned_depth_to_color/image_raw": bags.DEPTH_IMAGE}``."""
        self.remap = dict(remap or {})
        recorded = {canonical: bag_topic for bag_topic, canonical in self.remap.items()}
        wanted = list(topics) if topics is not None else list(bags.TOPICS)
        if anchor_topic not in wanted:
            wanted.insert(0, anchor_topic)
        slop_ns = round(max_offset_s * 1e9)
        self.bags = tuple(
            load_or_build_index(
                bag,
                anchor=recorded.get(anchor_topic, anchor_topic),
                topics=[recorded.get(t, t) for t in wanted],
                slop_ns=slop_ns,
                cache=cache,
            )
            for bag in find_bags(paths)
        )
        self.anchor_topic = anchor_topic
        self._offsets = np.cumsum([0] + [len(b) for b in self.bags])
        self._readers: dict[int, Reader] = {}

    def __len__(self) -> int:
        return int(self._offsets[-1])

    @property
    def stamps(self) -> np.ndarray:
        """(N,) int64 anchor stamps of all samples, in index order."""
        return np.concatenate([b.stamps for b in self.bags]) if self.bags else np.zeros(0, np.int64)

    def locate(self, index: int) -> tuple[int, int]:
        """Sample index -> (bag number, sample number within that bag)."""
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"sample {index} out of range for {n} samples")
        index %= n
        bag = int(np.searchsorted(self._offsets, index, side="right") - 1)
        return bag, int(index - self._offsets[bag])

    def _reader(self, bag_number: int) -> Reader:
        reader = self._readers.get(bag_number)
        if reader is None:
            reader = Reader(self.bags[bag_number].bag)
            try:
                reader.open()
            except Exception as exc:
                raise BagError(f"cannot open bag {self.bags[bag_number].bag}: {exc}") from exc
            self._readers[bag_number] = reader
        return reader

    def __getitem__(self, index: int) -> bags.FrameRecord:
        bag_number, local = self.locate(int(index))
        entry = self.bags[bag_number]
        times = entry.log_times[local]
        wanted = {topic: int(t) for topic, t in zip(entry.topics, times, strict=True) if t != MISSING}
        reader = self._reader(bag_number)
        conns = [c for c in reader.connections if c.topic in wanted]
        start, stop = min(wanted.values()), max(wanted.values()) + 1
        raw: dict[str, tuple[str, bytes]] = {}
        for connection, log_time, data in reader.messages(connections=conns, start=start, stop=stop):
            if log_time == wanted[connection.topic] and connection.topic not in raw:
                raw[connection.topic] = (connection.msgtype, data)
        missing = sorted(set(wanted) - set(raw))
        if missing:
            raise BagIndexError(
                f"{entry.bag}: messages of {missing} listed in the index are gone; delete "
                f"{index_path_for(entry.bag)} to rebuild it"
            )
        canonical = {self.remap.get(topic, topic): message for topic, message in raw.items()}
        return bags.decode_frame(int(entry.stamps[local]), canonical, source=f"{entry.bag}#{local}")

    def __iter__(self) -> Iterator[bags.FrameRecord]:
        for i in range(len(self)):
            yield self[i]

    def close(self) -> None:
        for reader in self._readers.values():
            reader.close()
        self._readers.clear()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_readers"] = {}
        return state

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()
