"""GG-CNN per-frame processing around the network: the original ROS 1 node's recipe versus ours, same inputs.

Both sides get the same 300x300 depth crops (with holes) and the same four network output maps per frame, in one
run, interleaved frame by frame so machine load hits both alike. What is timed is everything the node does per
frame except the network itself:

- **reference**, re-implemented here from the published description of the GG-CNN ROS node and its post-processing:
  pad the crop by one pixel, mark NaN holes, scale depth by its absolute maximum, ``cv2.inpaint`` (Navier-Stokes,
  radius 1) the holes, unpad and rescale, subtract the mean and clip to [-1, 1] (network input); after the network,
  ``skimage.filters.gaussian`` on quality (sigma 2), on the angle map ``atan2(sin, cos) / 2`` (sigma 2) and on the
  width (sigma 1), then ``skimage.feature.peak_local_max(min_distance=20, threshold_abs=0.2, num_peaks=5)``, then the
  angle/width/depth at each peak and the deprojection of each grasp centre;
- **ours**: :func:`dcl_arc_ros.core.grasp_pipeline.prepare_ggcnn_input` (nearest-valid hole filling, mean, clip),
  :func:`~dcl_arc_ros.core.grasps.decode_grasp_maps` (OpenCV separable Gaussians with the same kernels),
  :func:`~dcl_arc_ros.core.grasps.detect_grasp_rects` (one ``cv2.dilate`` max filter + greedy spacing on the few
  candidates) and :func:`~dcl_arc_ros.core.grasps.grasps_to_3d` (median of valid depth around each grasp).

Identity check: the image-space grasps (peak pixel, angle, width) of the two sides must be equal on every frame
(angle and width to 1e-4, peaks exactly). Positions in 3D are not compared: the reference reads the single depth
pixel at the peak (which can be a hole), ours the median of the valid depth around it, by design.

Frames are procedural 640x480 tabletop depth images (a tilted table, boxes, speckle and blob holes, about 8 % of the
crop invalid); the network outputs are GG-CNN-like maps built from each frame's geometry (quality blobs on the boxes,
per-box angles and widths, mild noise), or, with ``--checkpoint``, the outputs of a trained GG-CNN on those frames.

    python -m benchmarks.grasp_postprocess --out benchmarks/results [--frames 40] [--repeats 3] [--checkpoint PATH]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from dcl_arc_ros.core.camera import Intrinsics
from dcl_arc_ros.core.grasp_pipeline import prepare_ggcnn_input
from dcl_arc_ros.core.grasps import GraspDecodeParams, decode_grasp_maps, detect_grasp_rects, grasps_to_3d

RESULT_FILE = "grasp_postprocess.json"
CROP = 300
TARGET_SPEEDUP = 2.0


@dataclass(frozen=True)
class BenchFrame:
    crop_depth: np.ndarray  # (300, 300) float32 metres, NaN holes
    crop_intrinsics: Intrinsics
    outputs: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # quality, cos2, sin2, width/150 (300, 300)


# --------------------------------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------------------------------


def make_frame(index: int, intrinsics: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    """A 640x480 tabletop depth image with holes and its GG-CNN-like maps at full resolution."""
    rng = np.random.default_rng(index)
    h, w = intrinsics.height, intrinsics.width
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    tilt = rng.uniform(-0.25, 0.25)
    depth = (0.75 + 0.0004 * (v - h / 2) * (1 + tilt) + 0.0001 * tilt * (u - w / 2)).astype(np.float32)
    quality = np.zeros((h, w), np.float32)
    angle = np.zeros((h, w), np.float32)
    width = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(3, 7))):
        cx, cy = rng.uniform(200, 440), rng.uniform(110, 370)
        a = rng.uniform(-math.pi / 2, math.pi / 2)
        half_l, half_w = rng.uniform(15, 45), rng.uniform(8, 20)
        du, dv = u - cx, v - cy
        along = du * math.cos(a) + dv * math.sin(a)
        across = -du * math.sin(a) + dv * math.cos(a)
        box = (np.abs(along) <= half_l) & (np.abs(across) <= half_w)
        depth[box] -= rng.uniform(0.03, 0.12)
        blob = np.exp(-(along**2 / (2 * (half_l / 2) ** 2) + across**2 / (2 * (half_w / 2) ** 2))).astype(np.float32)
        blob *= rng.uniform(0.5, 1.0)
        take = blob > quality
        quality[take] = blob[take]
        angle[take] = a + math.pi / 2  # close across the box's short side
        width[take] = 2 * half_w + 10
    quality += rng.normal(0, 0.02, quality.shape).astype(np.float32)
    depth += rng.normal(0, 0.001, depth.shape).astype(np.float32)
    holes = rng.random((h, w)) < 0.04
    for _ in range(int(rng.integers(4, 10))):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(5, 25)
        holes |= (u - cx) ** 2 + (v - cy) ** 2 < r**2
    depth[holes] = np.nan
    maps = np.stack([quality, np.cos(2 * angle), np.sin(2 * angle), width / 150.0]).astype(np.float32)
    return depth, maps


def build_frames(n: int, checkpoint: Path | None) -> list[BenchFrame]:
    k = Intrinsics(fx=615.0, fy=615.0, cx=319.5, cy=239.5, width=640, height=480)
    y0, x0 = (k.height - CROP) // 2, (k.width - CROP) // 2
    crop_k = k.crop(x0, y0, CROP, CROP)
    net = _load_checkpoint(checkpoint) if checkpoint else None
    frames = []
    for i in range(n):
        depth, maps = make_frame(i, k)
        crop = np.ascontiguousarray(depth[y0 : y0 + CROP, x0 : x0 + CROP])
        if net is not None:
            net_input = prepare_ggcnn_input(crop, (CROP, CROP))
            outputs = (
                net(net_input) if net_input is not None else tuple(np.zeros((CROP, CROP), np.float32) for _ in range(4))
            )
        else:
            outputs = tuple(np.ascontiguousarray(m[y0 : y0 + CROP, x0 : x0 + CROP]) for m in maps)
        frames.append(BenchFrame(crop, crop_k, outputs))  # type: ignore[arg-type]
    return frames


def _load_checkpoint(path: Path) -> Any:
    import torch

    import dcl_arc_ros.learning.grasp  # noqa: F401  (registers the GG-CNN kinds)
    from dcl_arc_ros.learning.checkpoint import build_from_checkpoint

    net = build_from_checkpoint(path)

    def run(x: np.ndarray) -> tuple[np.ndarray, ...]:
        with torch.no_grad():
            return tuple(o[0, 0].numpy() for o in net(torch.from_numpy(x)))

    return run


# --------------------------------------------------------------------------------------------------------------------
# the two sides
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SideResult:
    pre_s: float
    post_s: float
    grasps: np.ndarray  # (N, 4): row, col, angle, width_px


def reference_side(frame: BenchFrame) -> SideResult:
    from skimage.feature import peak_local_max
    from skimage.filters import gaussian

    t0 = time.perf_counter()
    d = cv2.copyMakeBorder(frame.crop_depth, 1, 1, 1, 1, cv2.BORDER_DEFAULT)
    nan_mask = np.isnan(d).astype(np.uint8)
    d[nan_mask == 1] = 0
    scale = float(np.abs(d).max())
    d = d.astype(np.float32) / scale
    d = cv2.inpaint(d, nan_mask, 1, cv2.INPAINT_NS)
    d = d[1:-1, 1:-1] * scale
    net_input = np.clip(d - d.mean(), -1, 1)
    t1 = time.perf_counter()
    q_raw, cos_raw, sin_raw, w_raw = frame.outputs
    quality = gaussian(q_raw, 2.0, preserve_range=True)
    angle = gaussian(np.arctan2(sin_raw, cos_raw) / 2.0, 2.0, preserve_range=True)
    width = gaussian(w_raw * 150.0, 1.0, preserve_range=True)
    peaks = peak_local_max(quality, min_distance=20, threshold_abs=0.2, num_peaks=5)
    rows = []
    k = frame.crop_intrinsics
    for r, c in peaks:
        z = frame.crop_depth[r, c]
        _ = ((c - k.cx) * z / k.fx, (r - k.cy) * z / k.fy, z)
        rows.append((r, c, angle[r, c], width[r, c]))
    t2 = time.perf_counter()
    assert net_input.shape == (CROP, CROP)
    return SideResult(t1 - t0, t2 - t1, np.array(rows, dtype=np.float64).reshape(-1, 4))


def our_side(frame: BenchFrame, params: GraspDecodeParams) -> SideResult:
    t0 = time.perf_counter()
    net_input = prepare_ggcnn_input(frame.crop_depth, (CROP, CROP))
    t1 = time.perf_counter()
    maps = decode_grasp_maps(*frame.outputs, params=params)
    rects = detect_grasp_rects(maps, params)
    grasps_to_3d(rects, frame.crop_depth, frame.crop_intrinsics)
    t2 = time.perf_counter()
    assert net_input is not None
    rows = np.stack([rects[:, 1], rects[:, 0], rects[:, 2], rects[:, 3]], axis=1)
    return SideResult(t1 - t0, t2 - t1, rows)


def same_grasps(ref: np.ndarray, ours: np.ndarray) -> bool:
    if ref.shape != ours.shape:
        return False
    if not np.array_equal(ref[:, :2], ours[:, :2]):
        return False
    d_angle = np.abs(ref[:, 2] - ours[:, 2]) % np.pi
    d_angle = np.minimum(d_angle, np.pi - d_angle)
    return bool(np.all(d_angle < 1e-4) and np.allclose(ref[:, 3], ours[:, 3], rtol=1e-4, atol=1e-4))


# --------------------------------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------------------------------


def _ms(values: Sequence[float]) -> dict[str, float]:
    arr = np.asarray(values) * 1e3
    return {
        "median": round(float(np.median(arr)), 3),
        "mean": round(float(arr.mean()), 3),
        "p90": round(float(np.percentile(arr, 90)), 3),
        "min": round(float(arr.min()), 3),
    }


def run(frames: list[BenchFrame], repeats: int) -> dict[str, Any]:
    reference_params = GraspDecodeParams(angle_smoothing="angle")
    vector_params = GraspDecodeParams(angle_smoothing="vector")
    ref_total: list[float] = []
    our_total: list[float] = []
    vec_total: list[float] = []
    ref_pre: list[float] = []
    ref_post: list[float] = []
    our_pre: list[float] = []
    our_post: list[float] = []
    per_frame: list[dict[str, Any]] = []
    identical = 0
    n_grasps = 0
    for i, frame in enumerate(tqdm(frames, desc="grasp_postprocess", leave=False)):
        r_times, o_times, v_times = [], [], []
        ref = ours = None
        for _ in range(repeats):  # interleaved, best of the repeats per frame
            ref = reference_side(frame)
            ours = our_side(frame, reference_params)
            vec = our_side(frame, vector_params)
            r_times.append(ref)
            o_times.append(ours)
            v_times.append(vec)
        assert ref is not None and ours is not None
        r_best = min(r_times, key=lambda s: s.pre_s + s.post_s)
        o_best = min(o_times, key=lambda s: s.pre_s + s.post_s)
        v_best = min(v_times, key=lambda s: s.pre_s + s.post_s)
        same = same_grasps(ref.grasps, ours.grasps)
        identical += int(same)
        n_grasps += len(ref.grasps)
        ref_total.append(r_best.pre_s + r_best.post_s)
        our_total.append(o_best.pre_s + o_best.post_s)
        vec_total.append(v_best.pre_s + v_best.post_s)
        ref_pre.append(r_best.pre_s)
        ref_post.append(r_best.post_s)
        our_pre.append(o_best.pre_s)
        our_post.append(o_best.post_s)
        per_frame.append(
            {
                "frame": i,
                "reference_ms": round(1e3 * ref_total[-1], 3),
                "ours_ms": round(1e3 * our_total[-1], 3),
                "ratio": round(ref_total[-1] / our_total[-1], 3),
                "grasps": len(ref.grasps),
                "identical": same,
            }
        )
    ratio = statistics.median(ref_total) / statistics.median(our_total)
    return {
        "frames": len(frames),
        "repeats_per_frame": repeats,
        "reference_ms": {"total": _ms(ref_total), "pre_network": _ms(ref_pre), "post_network": _ms(ref_post)},
        "ours_ms": {"total": _ms(our_total), "pre_network": _ms(our_pre), "post_network": _ms(our_post)},
        "ours_vector_smoothing_ms": {"total": _ms(vec_total)},
        "speedup_median": round(ratio, 3),
        "speedup_target": TARGET_SPEEDUP,
        "meets_target": bool(ratio >= TARGET_SPEEDUP),
        "speedup_post_network_only": round(statistics.median(ref_post) / statistics.median(our_post), 3),
        "identical_frames": identical,
        "all_grasps_identical": identical == len(frames),
        "total_grasps": n_grasps,
        "per_frame": per_frame,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="directory for the JSON result")
    parser.add_argument("--frames", type=int, default=40, help="number of procedural frames")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per frame (the best one counts)")
    parser.add_argument("--checkpoint", type=Path, default=None, help="a trained GG-CNN checkpoint for the maps")
    parser.add_argument(
        "--cv-threads",
        type=int,
        default=1,
        help="OpenCV worker threads (1 = single-threaded like scipy/scikit-image; the fair default)",
    )
    args = parser.parse_args(argv)
    if args.frames < 1 or args.repeats < 1:
        parser.error(f"--frames ({args.frames}) and --repeats ({args.repeats}) must be >= 1")
    cv2.setNumThreads(args.cv_threads)
    frames = build_frames(args.frames, args.checkpoint)
    results = run(frames, args.repeats)
    doc = {
        "benchmark": "grasp_postprocess",
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "settings": {
            "crop": CROP,
            "min_distance": 20,
            "threshold": 0.2,
            "num_peaks": 5,
            "sigmas": {"quality": 2.0, "angle": 2.0, "width": 1.0},
            "model_outputs": f"checkpoint {args.checkpoint.name}" if args.checkpoint else "procedural GG-CNN-like maps",
            "timed": "per frame, everything except the network: hole filling + normalisation, smoothing, peaks, "
            "grasp read-out and deprojection; best of the repeats per frame, medians over frames",
            "cv_threads": args.cv_threads,
            "cpu_count": os.cpu_count(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "numpy": np.__version__,
            "opencv": cv2.__version__,
            "scikit_image": metadata.version("scikit-image"),
        },
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / RESULT_FILE
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    r = results
    print(
        f"grasp post-processing: reference {r['reference_ms']['total']['median']:.2f} ms, ours "
        f"{r['ours_ms']['total']['median']:.2f} ms per frame (median) -> {r['speedup_median']:.2f}x; "
        f"identical grasps on {r['identical_frames']}/{r['frames']} frames; wrote {path}"
    )
    return 0 if r["all_grasps_identical"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
