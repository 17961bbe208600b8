"""dcl-arc-generate: render synthetic scenes into rosbag2 training bags, resumable, sharded and in parallel.

    dcl-arc-generate --out data/train --scenes 200 --frames-per-scene 4 --sensor empirical --seed 0 --workers 2
    dcl-arc-generate --out data/train ... --shard 3/16      # one task of a cluster array job; same options otherwise

The work is a fixed list of bags (see :mod:`dcl_arc_ros.sim.manifest`); each bag is rendered and written by one
process, under a temporary name, and renamed into place when complete. A re-run with the same options skips every
finished bag, so an interrupted run (Ctrl-C, pre-empted node) resumes where it stopped. ``--seed`` fixes every array:
scene seeds derive from (seed, scene index), and frame stamps from the scene index and ``--fps``.

Renderers come from :data:`FRAME_SOURCES`: ``pybullet`` is the real one (:mod:`dcl_arc_ros.sim.pipeline`); ``toy`` is
an analytic, renderer-free stand-in (tilted table plane and box tops with exact labels) for smoke tests of the bag
and dataset tooling. It is not a training domain.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final, Protocol

import numpy as np
from tqdm import tqdm

from dcl_arc_ros.data.bags import COMPRESSIONS, STORAGES, BagStats, write_bag
from dcl_arc_ros.data.errors import DataError, GenerateError
from dcl_arc_ros.data.frame import Frame, GraspLabels, ObjectLabel
from dcl_arc_ros.sim.cameras import camera_preset
from dcl_arc_ros.sim.errors import SimError
from dcl_arc_ros.sim.manifest import (
    BagPlan,
    GenerateConfig,
    bag_state,
    build_manifest,
    check_same_config,
    parse_shard,
    plan_shards,
    scene_seed,
    write_manifest,
)

#: The sensor names of the CLI contract (keys of :data:`dcl_arc_ros.sim.sensors.SENSORS`).
SENSOR_NAMES: Final[tuple[str, ...]] = ("clean", "empirical", "active_stereo")
#: CLI camera names -> preset names in :data:`dcl_arc_ros.sim.cameras.CAMERAS`.
CAMERA_PRESETS: Final[dict[str, str]] = {"d435": "realsense_d435", "sr300": "realsense_sr300", "kinect_v1": "kinect_v1"}
CAMERA_NAMES: Final[tuple[str, ...]] = tuple(CAMERA_PRESETS)
FAMILY_NAMES: Final[tuple[str, ...]] = ("synthetic", "real_like")
#: First frame stamp of every generated data set (2023-11-14T22:13:20Z); frame k of scene s is at
#: EPOCH + (s * frames_per_scene + k) / fps, so stamps are unique and increasing across all bags of a run.
EPOCH_NS: Final = 1_700_000_000 * 1_000_000_000


@dataclass(frozen=True)
class SceneRequest:
    """What a renderer is asked for: ``frames`` frames of one scene, stamped from ``start_stamp_ns``."""

    seed: int
    frames: int
    sensor: str
    family: str
    camera: str  # a CLI camera name, a key of CAMERA_PRESETS
    width: int | None = None
    height: int | None = None
    start_stamp_ns: int = 0
    frame_period_ns: int = 33_333_333


class FrameSource(Protocol):
    """A renderer: one scene request in, that scene's frames out (stamps are rewritten by the generator)."""

    def __call__(self, request: SceneRequest) -> Iterable[Frame]: ...


def pybullet_frames(request: SceneRequest) -> Iterable[Frame]:
    """The PyBullet renderer, :func:`dcl_arc_ros.sim.pipeline.render_scene_frames`."""
    try:
        from dcl_arc_ros.sim.pipeline import render_scene_frames
    except ImportError as exc:
        raise GenerateError(f"the pybullet renderer is not available ({exc}); try --renderer toy") from exc
    return render_scene_frames(
        seed=request.seed,
        frames=request.frames,
        sensor=request.sensor,
        family=request.family,
        camera=CAMERA_PRESETS[request.camera],
        width=request.width,
        height=request.height,
        start_stamp_ns=request.start_stamp_ns,
        frame_period_ns=request.frame_period_ns,
    )


# -------------------------------------------------------------------------------------------------- toy renderer


def toy_frames(request: SceneRequest) -> Iterator[Frame]:
    """Analytic frames: a tilted table plane with a few rotated box tops resting above it, exact labels.

    Deterministic in ``request.seed``. Sensor depth is the clean depth for ``clean``, otherwise clean depth with
    depth-dependent Gaussian noise (Nguyen et al. axial model), random dropout and holes along object edges.
    """
    if request.camera not in CAMERA_PRESETS:
        raise GenerateError(f"unknown camera {request.camera!r}; expected one of {', '.join(CAMERA_PRESETS)}")
    preset = camera_preset(CAMERA_PRESETS[request.camera])
    width, height = (request.width or preset.intrinsics.width), (request.height or preset.intrinsics.height)
    intr = preset.at_resolution(width, height)
    rng = np.random.default_rng(request.seed)
    tilt = rng.uniform(0.3, 0.7)
    z0 = rng.uniform(0.6, 0.9)
    normal = np.array([0.0, math.sin(tilt), -math.cos(tilt)])  # facing the camera
    u = np.arange(width, dtype=np.float64)[None, :]
    v = np.arange(height, dtype=np.float64)[:, None]
    yn = (v - intr.cy) / intr.fy + 0.0 * u
    table = (-math.cos(tilt) * z0) / (normal[1] * yn + normal[2])
    depth = table.astype(np.float32)
    normals = np.broadcast_to(normal.astype(np.float32), (height, width, 3)).copy()
    instances = np.zeros((height, width), np.int32)
    base = rng.uniform(60, 200, size=3)
    rgb = np.clip(base + rng.normal(0, 12, size=(height, width, 3)), 0, 255)
    count = int(rng.integers(2, 5))
    specs: list[tuple[int, float, float, float, float, float, float, np.ndarray, np.ndarray, np.ndarray]] = []
    for k in range(1, count + 1):
        cu, cv = rng.uniform(0.25, 0.75) * width, rng.uniform(0.3, 0.8) * height
        half_a, half_b = rng.uniform(0.06, 0.12) * width, rng.uniform(0.03, 0.05) * width
        phi = rng.uniform(-math.pi / 2, math.pi / 2)
        z = float(table[int(cv), int(cu)]) - rng.uniform(0.03, 0.08)
        du, dv = u - cu, v - cv
        along = du * math.cos(phi) + dv * math.sin(phi)
        across = -du * math.sin(phi) + dv * math.cos(phi)
        full = (np.abs(along) <= half_a) & (np.abs(across) <= half_b)
        hit = full & (z < depth)
        depth[hit] = z
        instances[hit] = k
        normals[hit] = (0.0, 0.0, -1.0)
        rgb[hit] = rng.uniform(0, 255, size=3)
        specs.append((k, cu, cv, half_a, half_b, phi, z, full, along, across))
    objects, rects, ids, widths_m = [], [], [], []
    quality = np.zeros((height, width), np.float32)
    cos2, sin2, width_map = (np.zeros((height, width), np.float32) for _ in range(3))
    world_T_cam = np.eye(4)
    world_T_cam[:3, :3] = [[1, 0, 0], [0, -1, 0], [0, 0, -1]]
    world_T_cam[2, 3] = z0
    for k, cu, cv, half_a, half_b, phi, z, full, along, across in specs:
        mine = instances == k
        cam_T_obj = np.eye(4)
        cam_T_obj[:3, :3] = np.array(
            [[math.cos(phi), -math.sin(phi), 0.0], [math.sin(phi), math.cos(phi), 0.0], [0.0, 0.0, 1.0]]
        )
        cam_T_obj[:3, 3] = intr.deproject(cu, cv, z)
        objects.append(
            ObjectLabel(
                instance_id=k,
                class_id=k % 3,
                name="box",
                novel=False,
                cam_T_obj=cam_T_obj,
                visible_fraction=float(mine.sum() / max(full.sum(), 1)),
            )
        )
        if not mine[round(cv), round(cu)]:
            continue  # grasp centre occluded
        angle = (phi + math.pi / 2 + math.pi / 2) % math.pi - math.pi / 2  # jaws close across the short side
        jaw_px = 2.4 * half_b
        rects.append((cu, cv, angle, jaw_px, 1.0))
        ids.append(k)
        widths_m.append(jaw_px * z / intr.fx)
        centre = mine & (np.abs(along) <= 0.6 * half_a) & (np.abs(across) <= 0.4 * half_b)
        quality[centre] = 1.0
        cos2[centre], sin2[centre], width_map[centre] = math.cos(2 * angle), math.sin(2 * angle), jaw_px
    grasps = GraspLabels(
        rects=np.array(rects, np.float32).reshape(-1, 5),
        instance_ids=np.array(ids, np.int32),
        width_m=np.array(widths_m, np.float32),
        quality_map=quality,
        cos2_map=cos2,
        sin2_map=sin2,
        width_map=width_map,
    )
    edges = np.zeros_like(instances, dtype=bool)
    edges[:, 1:] |= instances[:, 1:] != instances[:, :-1]
    edges[1:, :] |= instances[1:, :] != instances[:-1, :]
    for i in range(request.frames):
        sensor = depth.copy()
        if request.sensor != "clean":
            sigma = 0.0012 + 0.0019 * (sensor - 0.4) ** 2
            sensor += rng.normal(size=sensor.shape).astype(np.float32) * sigma.astype(np.float32)
            sensor[edges | (rng.random(sensor.shape) < 0.02)] = np.nan
        yield Frame(
            stamp_ns=request.start_stamp_ns + i * request.frame_period_ns,
            intrinsics=intr,
            rgb=rgb.astype(np.uint8),
            depth_clean=depth.copy(),
            depth_sensor=sensor.astype(np.float32),
            instances=instances.copy(),
            normals=normals.copy(),
            world_T_cam=world_T_cam.copy(),
            objects=tuple(objects),
            grasps=grasps,
            sensor=request.sensor,
            family=request.family,
        )


#: Renderers by name (`--renderer`). Tests inject fakes here.
FRAME_SOURCES: dict[str, FrameSource] = {"pybullet": pybullet_frames, "toy": toy_frames}


# ------------------------------------------------------------------------------------------------------ the run


@dataclass(frozen=True)
class BagResult:
    name: str
    stats: BagStats
    seconds: float


@dataclass(frozen=True)
class RunSummary:
    """What one invocation did."""

    written: tuple[BagResult, ...]
    skipped: tuple[str, ...]
    seconds: float

    @property
    def frames(self) -> int:
        return sum(r.stats.frames for r in self.written)

    @property
    def objects(self) -> int:
        return sum(r.stats.objects for r in self.written)

    @property
    def grasps(self) -> int:
        return sum(r.stats.grasps for r in self.written)

    def describe(self) -> str:
        rate = self.frames / self.seconds if self.seconds > 0 else 0.0
        return (
            f"wrote {len(self.written)} bag(s), skipped {len(self.skipped)} finished: {self.frames} frames, "
            f"{self.objects} object labels, {self.grasps} grasps in {self.seconds:.1f} s ({rate:.2f} frames/s)"
        )


def _source(renderer: str) -> FrameSource:
    try:
        return FRAME_SOURCES[renderer]
    except KeyError:
        names = ", ".join(FRAME_SOURCES)
        raise GenerateError(f"unknown renderer {renderer!r}; expected one of {names}") from None


def scene_frames(config: GenerateConfig, scene: int, source: FrameSource) -> Iterator[Frame]:
    """The frames of one scene, stamped on the run's global clock (see :data:`EPOCH_NS`) and counted."""
    period_ns = 1e9 / config.fps
    request = SceneRequest(
        seed=scene_seed(config.seed, scene),
        frames=config.frames_per_scene,
        sensor=config.sensor,
        family=config.family,
        camera=config.camera,
        width=config.width,
        height=config.height,
        start_stamp_ns=EPOCH_NS + round(scene * config.frames_per_scene * period_ns),
        frame_period_ns=round(period_ns),
    )
    produced = 0
    for frame in source(request):
        if produced == config.frames_per_scene:
            raise GenerateError(f"renderer {config.renderer!r} gave more than {produced} frames for scene {scene}")
        stamp = EPOCH_NS + round((scene * config.frames_per_scene + produced) * period_ns)
        yield replace(frame, stamp_ns=stamp)
        produced += 1
    if produced != config.frames_per_scene:
        raise GenerateError(
            f"renderer {config.renderer!r} gave {produced} frames for scene {scene}, expected {config.frames_per_scene}"
        )


def bag_frames(plan: BagPlan, config: GenerateConfig, source: FrameSource) -> Iterator[Frame]:
    """The frames of one bag, rendered in this process."""
    for scene in plan.scene_indices:
        yield from scene_frames(config, scene, source)


def render_scene(config: GenerateConfig, scene: int) -> list[Frame]:
    """One scene's frames; the unit of work of a worker process."""
    return list(scene_frames(config, scene, _source(config.renderer)))


class SceneFeed:
    """Renders scenes in a process pool, at most ``window`` ahead of the writer, and returns them in scene order
    (so the bags are identical to a single-process run and memory stays bounded)."""

    def __init__(self, pool: ProcessPoolExecutor, config: GenerateConfig, scenes: Sequence[int], window: int) -> None:
        self._pool, self._config, self._window = pool, config, max(1, window)
        self._queue = list(scenes)
        self._running: dict[int, Future[list[Frame]]] = {}
        self._refill()

    def _refill(self) -> None:
        while self._queue and len(self._running) < self._window:
            scene = self._queue.pop(0)
            self._running[scene] = self._pool.submit(render_scene, self._config, scene)

    def frames(self, plan: BagPlan) -> Iterator[Frame]:
        for scene in plan.scene_indices:
            future = self._running.pop(scene, None)
            if future is None:
                raise GenerateError(f"scene {scene} of bag {plan.name} was never scheduled")
            frames = future.result()
            self._refill()
            yield from frames


def write_plan(
    out: Path,
    plan: BagPlan,
    config: GenerateConfig,
    frames: Iterable[Frame],
    on_frame: Callable[[], None] | None = None,
) -> BagResult:
    """Write one bag atomically from ``frames``."""
    start = time.perf_counter()

    def counted() -> Iterator[Frame]:
        for frame in frames:
            yield frame
            if on_frame is not None:
                on_frame()

    custom = {
        "dcl_arc_ros.sensor": config.sensor,
        "dcl_arc_ros.family": config.family,
        "dcl_arc_ros.camera": config.camera,
        "dcl_arc_ros.seed": str(config.seed),
        "dcl_arc_ros.first_scene": str(plan.first_scene),
        "dcl_arc_ros.renderer": config.renderer,
    }
    stats = write_bag(
        plan.path(out), counted(), storage=config.storage, compression=config.compression, custom_data=custom
    )
    return BagResult(name=plan.name, stats=stats, seconds=time.perf_counter() - start)


def generate(
    config: GenerateConfig,
    out: str | Path,
    *,
    shard: tuple[int, int] = (0, 1),
    workers: int = 1,
    progress: bool = True,
) -> RunSummary:
    """Generate the bags of one shard into ``out``, skipping finished ones; keep ``out/manifest.json`` current.

    With ``workers > 1`` scenes are rendered in that many processes while this process writes the bags in order
    (writing costs tens of milliseconds a frame, rendering far more). To use many machines or many cores beyond
    what one writer keeps up with, run several shards.
    """
    out = Path(out)
    index, count = shard
    if workers < 1:
        raise GenerateError(f"--workers must be at least 1, got {workers}")
    source = _source(config.renderer)
    out.mkdir(parents=True, exist_ok=True)
    check_same_config(out, config)
    write_manifest(out, build_manifest(out, config, count))
    mine = plan_shards(config, count)[index].bags
    todo = [plan for plan in mine if bag_state(out, plan) != "done"]
    skipped = tuple(plan.name for plan in mine if plan not in todo)
    start = time.perf_counter()
    written: list[BagResult] = []
    bar = tqdm(
        total=sum(p.scenes for p in todo) * config.frames_per_scene,
        unit="frame",
        desc=f"shard {index}/{count}",
        disable=not progress,
        file=sys.stderr,
    )
    pool: ProcessPoolExecutor | None = None
    try:
        feed: SceneFeed | None = None
        if workers > 1 and todo:
            pool = ProcessPoolExecutor(max_workers=workers)
            feed = SceneFeed(pool, config, [s for plan in todo for s in plan.scene_indices], window=2 * workers)
        for plan in todo:
            frames = feed.frames(plan) if feed is not None else bag_frames(plan, config, source)
            written.append(write_plan(out, plan, config, frames, on_frame=lambda: bar.update(1)))
            write_manifest(out, build_manifest(out, config, count))
    finally:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        bar.close()
        write_manifest(out, build_manifest(out, config, count))
    return RunSummary(written=tuple(written), skipped=skipped, seconds=time.perf_counter() - start)


# ---------------------------------------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dcl-arc-generate",
        description="Render synthetic tabletop scenes into rosbag2 training bags (format: docs/bag_format.md).",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder (bags + manifest.json)")
    parser.add_argument("--scenes", type=int, default=10, help="number of scenes in the whole data set")
    parser.add_argument("--frames-per-scene", type=int, default=4, help="frames (camera poses) per scene")
    parser.add_argument("--sensor", choices=SENSOR_NAMES, default="empirical", help="depth sensor model")
    parser.add_argument("--seed", type=int, default=0, help="base seed; the same seed gives identical arrays")
    parser.add_argument("--family", choices=FAMILY_NAMES, default="synthetic", help="scene family")
    parser.add_argument("--camera", choices=CAMERA_NAMES, default="d435", help="camera preset (intrinsics, size)")
    parser.add_argument("--width", type=int, default=None, help="image width (default: the preset's)")
    parser.add_argument("--height", type=int, default=None, help="image height (default: the preset's)")
    parser.add_argument("--storage", choices=tuple(STORAGES), default="mcap", help="rosbag2 storage plug-in")
    parser.add_argument(
        "--compression",
        choices=COMPRESSIONS,
        default="zstd",
        help="zstd: compressed MCAP chunks / sqlite3 messages (about 3-10x smaller); none",
    )
    parser.add_argument("--workers", type=int, default=1, help="rendering processes on this machine")
    parser.add_argument("--shard", default="0/1", help="i/n: do only shard i of n (for cluster array jobs)")
    parser.add_argument("--scenes-per-bag", type=int, default=10, help="scenes per bag (the unit of resumption)")
    parser.add_argument("--fps", type=float, default=30.0, help="camera rate: frames are stamped 1/fps apart")
    parser.add_argument(
        "--renderer",
        choices=tuple(FRAME_SOURCES),
        default="pybullet",
        help="'pybullet' renders real scenes; 'toy' is an analytic stand-in for smoke tests",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = GenerateConfig(
            scenes=args.scenes,
            frames_per_scene=args.frames_per_scene,
            sensor=args.sensor,
            seed=args.seed,
            family=args.family,
            camera=args.camera,
            width=args.width,
            height=args.height,
            storage=args.storage,
            compression=args.compression,
            scenes_per_bag=args.scenes_per_bag,
            fps=args.fps,
            renderer=args.renderer,
        )
        summary = generate(
            config, args.out, shard=parse_shard(args.shard), workers=args.workers, progress=not args.no_progress
        )
    except (DataError, SimError) as exc:
        parser.exit(2, f"dcl-arc-generate: error: {exc}\n")
    except KeyboardInterrupt:
        print("dcl-arc-generate: interrupted; finished bags are kept, re-run to resume", file=sys.stderr)
        return 130
    print(summary.describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())
