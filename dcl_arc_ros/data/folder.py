"""A generic folder layout for RGB-D data, for users whose recordings are not bags.

::

    root/
      camera.json           {"fx": ..., "fy": ..., "cx": ..., "cy": ..., "width": W, "height": H}  (optional)
      depth/NAME.png        16-bit PNG, depth in millimetres, 0 = no reading (required; defines the samples)
      rgb/NAME.png|.jpg     8-bit colour, registered to the depth image (optional)
      depth_clean/NAME.png  16-bit PNG in millimetres: ground truth / clean depth (optional)

Samples are the ``depth/*.png`` files in sorted name order. Without camera.json the records carry no intrinsics
(crop/resize then cannot keep K consistent and training code that needs K will refuse them).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import cv2
import numpy as np

from dcl_arc_ros.core.camera import Intrinsics
from dcl_arc_ros.core.errors import CameraError
from dcl_arc_ros.data.bags import FrameRecord
from dcl_arc_ros.data.errors import DatasetError

CAMERA_FILE: Final = "camera.json"
RGB_SUFFIXES: Final[tuple[str, ...]] = (".png", ".jpg", ".jpeg")


def read_depth_png(path: Path) -> np.ndarray:
    """A 16-bit millimetre PNG -> float32 metres with NaN where the value is 0."""
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise DatasetError(f"cannot read depth image {path}")
    if raw.dtype != np.uint16 or raw.ndim != 2:
        raise DatasetError(f"depth image {path} must be a single-channel 16-bit PNG in mm, got {raw.dtype} {raw.shape}")
    depth = raw.astype(np.float32) / np.float32(1000.0)
    depth[raw == 0] = np.nan
    return depth


def write_depth_png(path: Path, depth_m: np.ndarray) -> None:
    """float metres (NaN/<=0 = no reading) -> 16-bit millimetre PNG (values beyond 65.535 m become 0)."""
    mm = np.rint(np.asarray(depth_m, dtype=np.float64) * 1000.0)
    ok = np.isfinite(mm) & (mm > 0) & (mm <= np.iinfo(np.uint16).max)
    out = np.where(ok, mm, 0).astype(np.uint16)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), out):
        raise DatasetError(f"cannot write depth image {path}")


def read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DatasetError(f"cannot read colour image {path}")
    return np.ascontiguousarray(bgr[:, :, ::-1])


def write_rgb(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.ascontiguousarray(np.asarray(rgb, np.uint8)[:, :, ::-1])):
        raise DatasetError(f"cannot write colour image {path}")


def read_camera_json(path: Path) -> Intrinsics:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Intrinsics(
            fx=float(data["fx"]),
            fy=float(data["fy"]),
            cx=float(data["cx"]),
            cy=float(data["cy"]),
            width=int(data["width"]),
            height=int(data["height"]),
        )
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError, CameraError) as exc:
        raise DatasetError(f"bad camera file {path}: {exc}") from exc


def write_camera_json(path: Path, intrinsics: Intrinsics) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = {k: getattr(intrinsics, k) for k in ("fx", "fy", "cx", "cy", "width", "height")}
    path.write_text(json.dumps(fields, indent=2) + "\n", encoding="utf-8")


def write_folder_sample(root: str | Path, name: str, record: FrameRecord) -> None:
    """Write one record in the folder layout (the depth, colour and clean depth it has; camera.json once)."""
    root = Path(root)
    if record.depth is None:
        raise DatasetError(f"record {record.source or name} has no depth to write to {root}")
    write_depth_png(root / "depth" / f"{name}.png", record.depth)
    if record.rgb is not None:
        write_rgb(root / "rgb" / f"{name}.png", record.rgb)
    if record.depth_clean is not None:
        write_depth_png(root / "depth_clean" / f"{name}.png", record.depth_clean)
    if record.intrinsics is not None and not (root / CAMERA_FILE).exists():
        write_camera_json(root / CAMERA_FILE, record.intrinsics)


class FolderFrames:
    """Random-access FrameRecords over the folder layout above."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        depth_dir = self.root / "depth"
        if not depth_dir.is_dir():
            raise DatasetError(f"{self.root} has no depth/ folder (see dcl_arc_ros.data.folder for the layout)")
        self.names = tuple(sorted(p.stem for p in depth_dir.glob("*.png")))
        if not self.names:
            raise DatasetError(f"{depth_dir} holds no .png depth images")
        camera = self.root / CAMERA_FILE
        self.intrinsics = read_camera_json(camera) if camera.is_file() else None

    def __len__(self) -> int:
        return len(self.names)

    def _rgb_path(self, name: str) -> Path | None:
        for suffix in RGB_SUFFIXES:
            path = self.root / "rgb" / f"{name}{suffix}"
            if path.is_file():
                return path
        return None

    def __getitem__(self, index: int) -> FrameRecord:
        name = self.names[index]
        depth_path = self.root / "depth" / f"{name}.png"
        depth = read_depth_png(depth_path)
        rgb_path = self._rgb_path(name)
        rgb = read_rgb(rgb_path) if rgb_path is not None else None
        clean_path = self.root / "depth_clean" / f"{name}.png"
        clean = read_depth_png(clean_path) if clean_path.is_file() else None
        for label, arr in (("rgb", rgb), ("depth_clean", clean)):
            if arr is not None and arr.shape[:2] != depth.shape:
                raise DatasetError(f"{label} of {name} is {arr.shape[:2]} but {depth_path} is {depth.shape}")
        intr = self.intrinsics
        if intr is not None and (intr.height, intr.width) != depth.shape:
            raise DatasetError(
                f"{depth_path} is {depth.shape} (HxW) but {self.root / CAMERA_FILE} says {intr.height}x{intr.width}"
            )
        return FrameRecord(
            stamp_ns=index,
            intrinsics=intr,
            color_intrinsics=intr if rgb is not None else None,
            rgb=rgb,
            depth=depth,
            depth_clean=clean,
            source=str(depth_path),
        )

    def __iter__(self) -> Iterator[FrameRecord]:
        for i in range(len(self)):
            yield self[i]
