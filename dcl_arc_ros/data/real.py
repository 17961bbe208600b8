"""Real captured data that installs from package registries (nothing is downloaded at run time).

* **RealSense SR300 "castel"** frames from Debian's ``visp-images-data`` (GPL-2, installed by ``make real-data``;
  never copied into this repository): 30 frames of real structured-light depth (``depth_image_NNNN.bin``) plus the
  grey image of the colour camera (``image_NNNN.pgm``). The .bin format is two little-endian uint32 (height, width)
  followed by height * width little-endian uint16; metres = value * :data:`SR300_DEPTH_SCALE`. Intrinsics are read
  from the package's ``chateau_depth.xml`` / ``chateau.xml`` and the colour-to-depth pose from ``depth_M_color.txt``
  (ViSP notation: it maps colour-frame points into the depth frame).
* **Middlebury 2014 "Motorcycle"** from scikit-image (``skimage.data.stereo_motorcycle()``, a quarter-size
  rectified pair with ground-truth disparity). Metric ground truth is ``Z = f B / (d + doffs)``.
"""

from __future__ import annotations

import functools
import importlib.util
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import cv2
import numpy as np

from dcl_arc_ros.core.camera import Intrinsics
from dcl_arc_ros.core.errors import CameraError
from dcl_arc_ros.data.bags import FrameRecord
from dcl_arc_ros.data.errors import DatasetError, RealDataMissingError

VISP_IMAGES_ROOT: Final = Path("/usr/share/visp-images-data/ViSP-images")
CASTEL_SUBDIR: Final = Path("mbt-depth/castel")
#: Metres per SR300 depth unit in the castel .bin files.
SR300_DEPTH_SCALE: Final = 0.000124986647
#: SR300 depth intrinsics of the castel recording (the values of chateau_depth.xml), used when the XML is missing.
SR300_DEPTH_INTRINSICS: Final = Intrinsics(
    fx=476.0536193848, fy=476.0534973145, cx=311.4845581055, cy=246.2832336426, width=640, height=480
)
CASTEL_FRAMES: Final = 30


@dataclass(frozen=True)
class StereoCalibration:
    """A rectified stereo pair's calibration (pixels and metres)."""

    f: float
    cx: float
    cy: float
    baseline_m: float
    doffs: float  # x-difference of the principal points, pixels (Middlebury 2014 convention)


#: Middlebury 2014 Motorcycle at scikit-image's quarter resolution (calibration from skimage.data's docstring).
MOTORCYCLE_CALIBRATION: Final = StereoCalibration(f=994.978, cx=311.193, cy=254.877, baseline_m=0.193001, doffs=31.086)


# ------------------------------------------------------------------------------------------------ availability


def castel_dir(root: str | Path | None = None) -> Path:
    """The castel folder: ``<root>/mbt-depth/castel`` with root defaulting to the Debian install location."""
    return (Path(root) if root is not None else VISP_IMAGES_ROOT) / CASTEL_SUBDIR


def castel_available(root: str | Path | None = None) -> bool:
    return (castel_dir(root) / "castel" / "depth_image_0000.bin").is_file()


def middlebury_available() -> bool:
    """scikit-image ships the Motorcycle pair inside its wheel, so importing it is all that is needed."""
    return importlib.util.find_spec("skimage") is not None


def real_data_available(root: str | Path | None = None) -> bool:
    """True when both real data sets can be read."""
    return castel_available(root) and middlebury_available()


def missing_reason(root: str | Path | None = None) -> str | None:
    """Why real data cannot be read (for pytest skip messages), or None when it can."""
    if not castel_available(root):
        return f"SR300 castel frames not found under {castel_dir(root)} (run `make real-data`: apt visp-images-data)"
    if not middlebury_available():
        return "scikit-image is not installed (Middlebury Motorcycle ships with it)"
    return None


# ------------------------------------------------------------------------------------------------ SR300 castel


def read_sr300_bin(path: str | Path) -> np.ndarray:
    """A castel ``depth_image_NNNN.bin`` -> float32 metres (H, W) with NaN where the sensor gave no reading."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RealDataMissingError(f"cannot read SR300 depth file {path}: {exc}") from exc
    if len(raw) < 8:
        raise DatasetError(f"{path} is {len(raw)} bytes, too short for its (height, width) header")
    height, width = (int(v) for v in np.frombuffer(raw[:8], dtype="<u4"))
    expected = 8 + 2 * height * width
    if len(raw) != expected:
        raise DatasetError(f"{path}: header says {height}x{width} (expects {expected} bytes), file has {len(raw)}")
    values = np.frombuffer(raw, dtype="<u2", offset=8).reshape(height, width)
    depth = values.astype(np.float32) * np.float32(SR300_DEPTH_SCALE)
    depth[values == 0] = np.nan
    return depth


def read_visp_camera_xml(path: str | Path, width: int, height: int) -> Intrinsics:
    """Intrinsics from a ViSP tracker config (``<camera><px/><py/><u0/><v0/></camera>``)."""
    path = Path(path)
    try:
        camera = ET.parse(path).getroot().find("camera")
        if camera is None:
            raise DatasetError(f"{path} has no <camera> element")
        values = {tag: float(camera.findtext(tag, default="nan")) for tag in ("px", "py", "u0", "v0")}
        return Intrinsics(
            fx=values["px"], fy=values["py"], cx=values["u0"], cy=values["v0"], width=width, height=height
        )
    except (OSError, ET.ParseError, ValueError, CameraError) as exc:
        raise DatasetError(f"cannot read camera intrinsics from {path}: {exc}") from exc


def read_homogeneous_matrix(path: str | Path) -> np.ndarray:
    path = Path(path)
    try:
        matrix = np.loadtxt(path, dtype=np.float64)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read a 4x4 matrix from {path}: {exc}") from exc
    if matrix.shape != (4, 4):
        raise DatasetError(f"{path} holds a {matrix.shape} matrix, expected 4x4")
    return matrix


def gray_in_depth_view(
    gray: np.ndarray, depth_m: np.ndarray, depth_intr: Intrinsics, color_intr: Intrinsics, color_T_depth: np.ndarray
) -> np.ndarray:
    """Resample the colour camera's image into the depth camera's pixels (so it is registered to the depth).

    Each depth pixel's 3D point is projected into the colour image and sampled bilinearly. Pixels without a depth
    reading use the median depth of the frame (the baseline is a few centimetres, so the parallax error is small).
    """
    fill = float(np.nanmedian(depth_m)) if np.isfinite(depth_m).any() else 1.0
    z = np.where(np.isfinite(depth_m), depth_m, fill).astype(np.float64)
    points = depth_intr.points_from_depth(z.astype(np.float32)).reshape(-1, 3).astype(np.float64)
    points = points @ color_T_depth[:3, :3].T + color_T_depth[:3, 3]
    u, v, _ = color_intr.project(points)
    map_x = np.nan_to_num(u, nan=-1.0).reshape(depth_m.shape).astype(np.float32)
    map_y = np.nan_to_num(v, nan=-1.0).reshape(depth_m.shape).astype(np.float32)
    return cv2.remap(gray, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


class CastelFrames:
    """The 30 SR300 castel frames as FrameRecords: real sensor depth (``depth``) in the depth camera's pixels.

    With ``with_gray`` (default) the colour camera's grey image, resampled into the depth view, is the ``rgb``
    (three equal channels). There is no ground-truth depth: this is a real-domain evaluation/adaptation set.
    """

    def __init__(self, root: str | Path | None = None, *, with_gray: bool = True) -> None:
        self.folder = castel_dir(root)
        frames = self.folder / "castel"
        if not castel_available(root):
            raise RealDataMissingError(
                f"SR300 castel frames not found in {frames}: run `make real-data` (apt install visp-images-data)"
            )
        self.depth_files = tuple(sorted(frames.glob("depth_image_*.bin")))
        self.with_gray = with_gray

    def __len__(self) -> int:
        return len(self.depth_files)

    @functools.cached_property
    def depth_intrinsics(self) -> Intrinsics:
        xml = self.folder / "chateau_depth.xml"
        return read_visp_camera_xml(xml, 640, 480) if xml.is_file() else SR300_DEPTH_INTRINSICS

    @functools.cached_property
    def color_intrinsics(self) -> Intrinsics:
        return read_visp_camera_xml(self.folder / "chateau.xml", 640, 480)

    @functools.cached_property
    def color_T_depth(self) -> np.ndarray:
        return np.linalg.inv(read_homogeneous_matrix(self.folder / "depth_M_color.txt"))

    def __getitem__(self, index: int) -> FrameRecord:
        path = self.depth_files[index]
        depth = read_sr300_bin(path)
        intr = self.depth_intrinsics
        if (intr.height, intr.width) != depth.shape:
            intr = Intrinsics(intr.fx, intr.fy, intr.cx, intr.cy, width=depth.shape[1], height=depth.shape[0])
        rgb = None
        if self.with_gray:
            image_path = path.with_name(path.name.replace("depth_image_", "image_").replace(".bin", ".pgm"))
            gray = cv2.imread(str(image_path), cv2.IMREAD_GRAYSCALE)
            if gray is None:
                raise DatasetError(f"cannot read {image_path}")
            color = self.color_intrinsics
            if (color.height, color.width) != gray.shape:
                color = Intrinsics(color.fx, color.fy, color.cx, color.cy, width=gray.shape[1], height=gray.shape[0])
            warped = gray_in_depth_view(gray, depth, intr, color, self.color_T_depth)
            rgb = np.repeat(warped[:, :, None], 3, axis=2)
        return FrameRecord(
            stamp_ns=index,
            intrinsics=intr,
            color_intrinsics=intr if rgb is not None else None,
            rgb=rgb,
            depth=depth,
            source=str(path),
        )

    def __iter__(self) -> Iterator[FrameRecord]:
        for i in range(len(self)):
            yield self[i]


# --------------------------------------------------------------------------------------------------- Middlebury


def disparity_to_depth(disparity: np.ndarray, calib: StereoCalibration) -> np.ndarray:
    """Disparity (pixels; NaN/inf/<= -doffs invalid) -> float32 metres ``f B / (d + doffs)``, NaN where invalid."""
    d = np.asarray(disparity, dtype=np.float64) + calib.doffs
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = np.where(np.isfinite(d) & (d > 0), calib.f * calib.baseline_m / d, np.nan)
    return depth.astype(np.float32)


def sgbm_depth(
    left_rgb: np.ndarray,
    right_rgb: np.ndarray,
    calib: StereoCalibration,
    *,
    num_disparities: int = 80,
    block_size: int = 5,
) -> np.ndarray:
    """Depth from OpenCV StereoSGBM on a rectified pair: a real stereo matcher's output, with its artefacts."""
    left = cv2.cvtColor(left_rgb, cv2.COLOR_RGB2GRAY)
    right = cv2.cvtColor(right_rgb, cv2.COLOR_RGB2GRAY)
    matcher = cv2.StereoSGBM.create(
        minDisparity=0,
        numDisparities=num_disparities,
        blockSize=block_size,
        P1=8 * block_size**2,
        P2=32 * block_size**2,
        uniquenessRatio=10,
        speckleWindowSize=100,
        speckleRange=2,
        mode=cv2.STEREO_SGBM_MODE_SGBM_3WAY,
    )
    disparity = matcher.compute(left, right).astype(np.float32) / 16.0
    disparity[disparity <= 0] = np.nan
    return disparity_to_depth(disparity, calib)


def middlebury_motorcycle() -> FrameRecord:
    """The Motorcycle pair as one FrameRecord: left ``rgb``, metric ground truth ``depth_clean`` (2.1-5.0 m), and
    ``depth`` from StereoSGBM on the pair (a real matcher on real images)."""
    if not middlebury_available():
        raise RealDataMissingError("the Middlebury Motorcycle pair needs scikit-image: pip install scikit-image")
    from skimage import data as skdata

    left, right, disparity = skdata.stereo_motorcycle()
    calib = MOTORCYCLE_CALIBRATION
    height, width = disparity.shape
    intr = Intrinsics(fx=calib.f, fy=calib.f, cx=calib.cx, cy=calib.cy, width=width, height=height)
    return FrameRecord(
        stamp_ns=0,
        intrinsics=intr,
        color_intrinsics=intr,
        rgb=np.ascontiguousarray(left, dtype=np.uint8),
        depth=sgbm_depth(left, right, calib),
        depth_clean=disparity_to_depth(disparity, calib),
        source="skimage.data.stereo_motorcycle",
    )


class MiddleburyFrames:
    """A one-sample sequence over :func:`middlebury_motorcycle` (computed once)."""

    def __init__(self) -> None:
        self._record = middlebury_motorcycle()

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> FrameRecord:
        if index not in (0, -1):
            raise IndexError(f"Middlebury Motorcycle has 1 sample, asked for {index}")
        return self._record
