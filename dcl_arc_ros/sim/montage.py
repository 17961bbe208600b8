"""A PNG montage of rendered frames: RGB, clean depth, every sensor's depth, instances, normals, grasps.

    python -m dcl_arc_ros.sim.montage --out docs/figures/sim_montage.png

Each row is one scene seen from one camera pose; every sensor model sees exactly the same view.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from dcl_arc_ros.data.frame import Frame, GraspLabels
from dcl_arc_ros.sim.cameras import camera_preset, sample_camera_pose
from dcl_arc_ros.sim.pipeline import render_frame
from dcl_arc_ros.sim.scenes import build_scene
from dcl_arc_ros.sim.sensors import SENSORS

DEFAULT_ROWS: tuple[tuple[int, str, str], ...] = (
    (101, "synthetic", "table"),
    (102, "synthetic", "tray"),
    (103, "real_like", "table"),
    (104, "real_like", "floor"),
)
TILE = (320, 240)
HEADER_PX = 26


def colour_depth(depth: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Turbo colour map of metric depth (near = red), black where NaN."""
    scaled = np.clip((np.nan_to_num(depth, nan=hi) - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    img = cv2.applyColorMap((255 * (1.0 - scaled)).astype(np.uint8), cv2.COLORMAP_TURBO)[..., ::-1]
    img[~np.isfinite(depth)] = 0
    return np.ascontiguousarray(img)


def colour_instances(instances: np.ndarray) -> np.ndarray:
    palette = np.random.default_rng(7).integers(60, 256, size=(int(instances.max()) + 1, 3)).astype(np.uint8)
    palette[0] = (30, 30, 30)
    return palette[instances]


def colour_normals(normals: np.ndarray) -> np.ndarray:
    img = ((normals * np.array([1.0, -1.0, -1.0]) * 0.5 + 0.5) * 255).astype(np.uint8)
    img[np.linalg.norm(normals, axis=-1) == 0] = 0
    return img


def draw_grasps(rgb: np.ndarray, grasps: GraspLabels) -> np.ndarray:
    """Grasp rectangles on a dimmed RGB: jaw lines in colour (red = low quality, green = high), opening in white."""
    img = (rgb.astype(np.float32) * 0.6).astype(np.uint8)
    for cx, cy, angle, width, quality in grasps.rects:
        d = np.array([np.cos(angle), np.sin(angle)])
        n = np.array([-d[1], d[0]])
        jaw = max(3.0, 0.5 * width)
        c = np.array([cx, cy])
        corners = [c + sa * d * width / 2 + sb * n * jaw / 2 for sa, sb in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
        pts = np.round(np.array(corners) * 16).astype(np.int32)
        colour = (int(255 * (1 - quality)), int(255 * quality), 40)
        cv2.line(img, tuple(pts[0]), tuple(pts[3]), colour, 2, cv2.LINE_AA, shift=4)
        cv2.line(img, tuple(pts[1]), tuple(pts[2]), colour, 2, cv2.LINE_AA, shift=4)
        cv2.line(img, tuple(pts[0]), tuple(pts[1]), (255, 255, 255), 1, cv2.LINE_AA, shift=4)
        cv2.line(img, tuple(pts[3]), tuple(pts[2]), (255, 255, 255), 1, cv2.LINE_AA, shift=4)
    return img


def _tile(img: np.ndarray, nearest: bool = False) -> np.ndarray:
    return cv2.resize(img, TILE, interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA)


def _header(titles: Sequence[str]) -> np.ndarray:
    bar = np.full((HEADER_PX, TILE[0] * len(titles), 3), 255, dtype=np.uint8)
    for i, title in enumerate(titles):
        cv2.putText(bar, title, (i * TILE[0] + 8, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    return bar


def montage_row(frames: dict[str, Frame]) -> np.ndarray:
    clean = frames["clean"]
    finite = clean.depth_clean[np.isfinite(clean.depth_clean)]
    lo, hi = (float(np.percentile(finite, 1)), float(np.percentile(finite, 99))) if finite.size else (0.0, 1.0)
    tiles = [_tile(clean.rgb), _tile(colour_depth(clean.depth_clean, lo, hi), nearest=True)]
    tiles += [_tile(colour_depth(frames[s].depth_sensor, lo, hi), nearest=True) for s in SENSORS if s != "clean"]
    tiles += [
        _tile(colour_instances(clean.instances), nearest=True),
        _tile(colour_normals(clean.normals)),
        _tile(draw_grasps(clean.rgb, clean.grasps)),
        _tile(colour_depth(np.where(clean.grasps.quality_map > 0, 1.0 - clean.grasps.quality_map, np.nan), 0, 1)),
    ]
    return np.concatenate(tiles, axis=1)


def render_montage(rows: Sequence[tuple[int, str, str]], camera: str = "realsense_d435") -> np.ndarray:
    preset = camera_preset(camera)
    intr = preset.intrinsics
    titles = ["RGB", "clean depth"] + [f"{s} depth" for s in SENSORS if s != "clean"]
    titles += ["instances", "normals", "grasps", "grasp quality map"]
    images = [_header(titles)]
    for seed, family, support in tqdm(rows, desc="montage rows"):
        with build_scene(seed, family, support=support) as scene:
            pose = sample_camera_pose(np.random.default_rng(seed), scene.workspace_centre, preset.view_distance_m)
            frames = {
                name: render_frame(
                    scene,
                    intr,
                    pose,
                    sensor=name,
                    baseline_m=preset.baseline_m,
                    depth_range_m=preset.depth_range_m,
                    disparity_subpixel=preset.disparity_subpixel,
                    sensor_rng=np.random.default_rng([seed, 1]),
                    rgb_rng=np.random.default_rng([seed, 2]),
                )
                for name in SENSORS
            }
        row = montage_row(frames)
        label = f"seed {seed}: {family} / {support}"
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        cv2.rectangle(row, (0, TILE[1] - th - 12), (tw + 12, TILE[1]), (255, 255, 255), -1)
        cv2.putText(row, label, (6, TILE[1] - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        images.append(row)
    return np.concatenate(images, axis=0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a PNG montage of synthetic frames with every label.")
    parser.add_argument("--out", type=Path, default=Path("docs/figures/sim_montage.png"))
    parser.add_argument("--camera", default="realsense_d435")
    args = parser.parse_args(argv)
    image = render_montage(DEFAULT_ROWS, args.camera)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(args.out), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise OSError(f"could not write montage image {args.out}")
    print(f"wrote {args.out} ({image.shape[1]}x{image.shape[0]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
