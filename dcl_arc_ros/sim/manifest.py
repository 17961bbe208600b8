"""The plan and the manifest of a generation run: which scenes go into which bag, which bags form which shard.

A run of N scenes is cut into bags of ``scenes_per_bag`` consecutive scenes; bag boundaries depend only on the
configuration, never on how many shards or workers share the work, so a run can be resumed or re-sharded freely.
Shard ``i`` of ``n`` owns the contiguous bag range ``[i * B // n, (i + 1) * B // n)`` of the B bags, hence a
contiguous range of scene indices and seeds; every scene's seed derives from ``(base seed, scene index)`` only.

State lives in the file system, not in a database: a bag under its final name is complete (the writer renames it
into place only when it is closed, see :func:`dcl_arc_ros.data.bags.write_bag`), a bag under ``.partial/`` is an
interrupted one, anything else is pending. ``manifest.json`` is a readable summary of that state, rewritten
atomically by every run; when several machines share an output folder the last writer wins, and because each writer
derives the state from the folder, the file is at worst slightly behind it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Final

import numpy as np

from dcl_arc_ros.core.files import atomic_write_bytes
from dcl_arc_ros.data.bags import partial_path, read_bag_stats
from dcl_arc_ros.data.errors import BagError, ManifestError

MANIFEST_NAME: Final = "manifest.json"
MANIFEST_FORMAT: Final = "dcl_arc_ros.generate/1"


@dataclass(frozen=True)
class GenerateConfig:
    """Everything that determines the contents of a generated data set (not how the work is spread)."""

    scenes: int
    frames_per_scene: int
    sensor: str
    seed: int
    family: str = "synthetic"
    camera: str = "d435"
    width: int | None = None
    height: int | None = None
    storage: str = "mcap"
    compression: str = "zstd"
    scenes_per_bag: int = 10
    fps: float = 30.0
    renderer: str = "pybullet"

    def __post_init__(self) -> None:
        for name in ("scenes", "frames_per_scene", "scenes_per_bag"):
            if getattr(self, name) < 1:
                raise ManifestError(f"{name} must be at least 1, got {getattr(self, name)!r}")
        if not self.fps > 0:
            raise ManifestError(f"fps must be positive, got {self.fps!r}")
        if (self.width is None) != (self.height is None):
            raise ManifestError(f"give both width and height or neither, got width={self.width} height={self.height}")

    @property
    def bag_count(self) -> int:
        return -(-self.scenes // self.scenes_per_bag)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], source: Path) -> GenerateConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ManifestError(f"{source}: unknown config keys {unknown}")
        try:
            return cls(**dict(data))
        except TypeError as exc:
            raise ManifestError(f"{source}: bad config {dict(data)}: {exc}") from exc


def scene_seed(base_seed: int, scene_index: int) -> int:
    """The renderer seed of one scene: a hash of (base seed, scene index), independent across both."""
    return int(np.random.SeedSequence([int(base_seed) & 0xFFFFFFFF, int(scene_index)]).generate_state(1)[0])


@dataclass(frozen=True)
class BagPlan:
    """One bag: ``scenes`` consecutive scenes starting at scene index ``first_scene``."""

    index: int
    first_scene: int
    scenes: int

    @property
    def name(self) -> str:
        return f"scenes_{self.first_scene:06d}-{self.first_scene + self.scenes - 1:06d}"

    @property
    def scene_indices(self) -> range:
        return range(self.first_scene, self.first_scene + self.scenes)

    def path(self, out: Path) -> Path:
        return out / self.name


@dataclass(frozen=True)
class ShardPlan:
    """Shard ``index`` of ``count``: a contiguous run of bags."""

    index: int
    count: int
    bags: tuple[BagPlan, ...]

    @property
    def scene_range(self) -> tuple[int, int]:
        if not self.bags:
            return (0, 0)
        return self.bags[0].first_scene, self.bags[-1].first_scene + self.bags[-1].scenes


_SHARD_RE: Final = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n``."""
    match = _SHARD_RE.match(text)
    if not match:
        raise ManifestError(f"--shard must look like i/n (e.g. 0/4), got {text!r}")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 0 <= index < count:
        raise ManifestError(f"--shard {text!r}: need 0 <= i < n and n >= 1")
    return index, count


def plan_bags(config: GenerateConfig) -> list[BagPlan]:
    return [
        BagPlan(
            index=b,
            first_scene=b * config.scenes_per_bag,
            scenes=min(config.scenes_per_bag, config.scenes - b * config.scenes_per_bag),
        )
        for b in range(config.bag_count)
    ]


def plan_shards(config: GenerateConfig, shard_count: int) -> list[ShardPlan]:
    """All ``shard_count`` shards; together they hold every bag exactly once. Some may be empty when there are
    more shards than bags."""
    if shard_count < 1:
        raise ManifestError(f"shard count must be at least 1, got {shard_count}")
    bags = plan_bags(config)
    total = len(bags)
    return [
        ShardPlan(
            index=i, count=shard_count, bags=tuple(bags[i * total // shard_count : (i + 1) * total // shard_count])
        )
        for i in range(shard_count)
    ]


def bag_state(out: Path, plan: BagPlan) -> str:
    """``done`` (complete under its final name), ``incomplete`` (an interrupted partial bag) or ``pending``."""
    if (plan.path(out) / "metadata.yaml").is_file():
        return "done"
    if partial_path(plan.path(out)).exists():
        return "incomplete"
    return "pending"


@functools.lru_cache(maxsize=65536)
def _stats(metadata: Path, mtime_ns: int) -> dict[str, int]:
    """A finished bag's counts, parsed once per (file, modification time): the manifest is rebuilt after every bag."""
    try:
        stats = read_bag_stats(metadata.parent)
    except BagError:
        return {}
    return {} if stats is None else {"frames": stats.frames, "objects": stats.objects, "grasps": stats.grasps}


def _bag_entry(out: Path, plan: BagPlan) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": plan.name,
        "first_scene": plan.first_scene,
        "scenes": plan.scenes,
        "state": bag_state(out, plan),
    }
    if entry["state"] == "done":
        metadata = plan.path(out) / "metadata.yaml"
        with contextlib.suppress(OSError):
            entry.update(_stats(metadata, metadata.stat().st_mtime_ns))
    return entry


def build_manifest(out: Path, config: GenerateConfig, shard_count: int) -> dict[str, Any]:
    """The manifest as a JSON-ready dict, with every shard's and bag's state read from ``out``."""
    shards = []
    for shard in plan_shards(config, shard_count):
        bags = [_bag_entry(out, plan) for plan in shard.bags]
        states = {b["state"] for b in bags}
        state = "done" if states <= {"done"} else "pending" if states == {"pending"} else "partial"
        first, stop = shard.scene_range
        shards.append(
            {
                "shard": f"{shard.index}/{shard.count}",
                "state": state,
                "first_scene": first,
                "stop_scene": stop,
                "bags": bags,
            }
        )
    return {
        "format": MANIFEST_FORMAT,
        "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": config.to_json(),
        "scene_seed": "numpy.random.SeedSequence([seed, scene_index]).generate_state(1)[0]",
        "shard_count": shard_count,
        "bag_count": config.bag_count,
        "shards": shards,
    }


def write_manifest(out: Path, manifest: Mapping[str, Any]) -> Path:
    """Write ``out/manifest.json`` atomically (temporary file + rename)."""
    return atomic_write_bytes(out / MANIFEST_NAME, (json.dumps(manifest, indent=2) + "\n").encode("utf-8"))


def read_manifest(out: Path) -> dict[str, Any] | None:
    """The manifest in ``out``, or None when there is none yet."""
    path = out / MANIFEST_NAME
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ManifestError(f"cannot read manifest {path}: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT or "config" not in data:
        raise ManifestError(f"{path} is not a {MANIFEST_FORMAT} manifest")
    return data


def check_same_config(out: Path, config: GenerateConfig) -> None:
    """Refuse to add to an output folder that was generated with a different configuration."""
    existing = read_manifest(out)
    if existing is None:
        return
    path = out / MANIFEST_NAME
    previous = GenerateConfig.from_json(existing["config"], path)
    differences = [
        f"{f.name}: {getattr(previous, f.name)!r} on disk, {getattr(config, f.name)!r} now"
        for f in fields(GenerateConfig)
        if getattr(previous, f.name) != getattr(config, f.name)
    ]
    if differences:
        raise ManifestError(
            f"{path} was written with a different configuration ({'; '.join(differences)}); "
            "use another --out or the same options"
        )
