"""NYU Depth v2, labelled subset (1449 aligned RGB-D frames of indoor scenes), in an extracted folder layout.

The official ``nyu_depth_v2_labeled.mat`` is a MATLAB v7.3 (HDF5) file, so reading it needs ``h5py``, which this
package does not depend on. Extract it once (``pip install h5py``, then :func:`extract_labelled_mat`) into::

    root/
      images/NNNNN.png       RGB, 640x480 (the .mat ``images``)
      depths/NNNNN.png       16-bit millimetres, the in-painted depth (``depths``) -> FrameRecord.depth_clean
      raw_depths/NNNNN.png   16-bit millimetres, 0 = no reading, the projected raw Kinect depth (``rawDepths``)
                             -> FrameRecord.depth (optional; when absent, depth = the in-painted depth)
      instances/NNNNN.png    8/16-bit instance ids (``instances``), optional
      splits.json            {"train": [...], "test": [...]}, 1-based indices as in the official splits.mat

``NNNNN`` is the 1-based frame index (00001 ... 01449), so the official split indices name files directly.
``.npy`` float32 metres files are accepted in place of the PNGs in depths/ and raw_depths/.

Intrinsics are those of the NYU toolbox (camera_params.m, RGB camera) converted from MATLAB's 1-based pixel
coordinates to the 0-based ROS/OpenCV convention (cx, cy minus 1). :data:`EIGEN_CROP` is the usual evaluation crop
that removes the white border the projection leaves.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np

from dcl_arc_ros.core.camera import Intrinsics
from dcl_arc_ros.data.bags import FrameRecord
from dcl_arc_ros.data.errors import DatasetError
from dcl_arc_ros.data.folder import read_depth_png, read_rgb, write_depth_png, write_rgb

#: NYU toolbox camera_params.m (fx_rgb, fy_rgb, cx_rgb, cy_rgb), with cx/cy shifted from 1-based to 0-based pixels.
NYU_INTRINSICS: Final = Intrinsics(
    fx=518.8579011745019,
    fy=519.4696111212749,
    cx=325.5824494111903 - 1.0,
    cy=253.7361663340047 - 1.0,
    width=640,
    height=480,
)
#: (y0, y1, x0, x1) of the standard evaluation crop (Eigen et al. 2014), half-open.
EIGEN_CROP: Final[tuple[int, int, int, int]] = (45, 471, 41, 601)
SPLITS: Final[tuple[str, ...]] = ("all", "train", "test")


def _name(index: int) -> str:
    return f"{index:05d}"


def _read_depth(folder: Path, name: str) -> np.ndarray | None:
    png, npy = folder / f"{name}.png", folder / f"{name}.npy"
    if png.is_file():
        return read_depth_png(png)
    if npy.is_file():
        depth = np.load(npy).astype(np.float32)
        depth[~(depth > 0)] = np.nan
        return depth
    return None


class NYUv2Frames:
    """Random-access FrameRecords over an extracted NYUv2 labelled folder (layout in the module doc)."""

    def __init__(self, root: str | Path, *, split: str = "all") -> None:
        self.root = Path(root)
        if split not in SPLITS:
            raise DatasetError(f"unknown NYUv2 split {split!r}; expected one of {', '.join(SPLITS)}")
        images = self.root / "images"
        if not images.is_dir():
            raise DatasetError(f"{self.root} has no images/ folder (see dcl_arc_ros.data.nyuv2 for the layout)")
        available = sorted(int(p.stem) for p in images.glob("*.png") if p.stem.isdigit())
        if split == "all":
            indices = available
        else:
            splits_file = self.root / "splits.json"
            try:
                chosen = json.loads(splits_file.read_text(encoding="utf-8"))[split]
            except (OSError, json.JSONDecodeError, KeyError) as exc:
                raise DatasetError(f"split {split!r} needs {splits_file} with a {split!r} list: {exc}") from exc
            have = set(available)
            missing = [i for i in chosen if i not in have]
            if missing:
                raise DatasetError(
                    f"{splits_file} lists {len(missing)} {split} frames missing from {images}, e.g. {missing[:5]}"
                )
            indices = [int(i) for i in chosen]
        if not indices:
            raise DatasetError(f"{images} holds no NNNNN.png frames")
        self.indices = tuple(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int) -> FrameRecord:
        index = self.indices[item]
        name = _name(index)
        rgb = read_rgb(self.root / "images" / f"{name}.png")
        clean = _read_depth(self.root / "depths", name)
        raw = _read_depth(self.root / "raw_depths", name)
        if clean is None and raw is None:
            raise DatasetError(f"no depth for frame {name} in {self.root / 'depths'} or {self.root / 'raw_depths'}")
        depth = raw if raw is not None else clean
        instances = None
        inst_path = self.root / "instances" / f"{name}.png"
        if inst_path.is_file():
            import cv2

            loaded = cv2.imread(str(inst_path), cv2.IMREAD_UNCHANGED)
            if loaded is None:
                raise DatasetError(f"cannot read instance image {inst_path}")
            instances = loaded.astype(np.int32)
        intr = NYU_INTRINSICS
        if rgb.shape[:2] != (intr.height, intr.width):
            intr = intr.resize(rgb.shape[1], rgb.shape[0])
        return FrameRecord(
            stamp_ns=index,
            intrinsics=intr,
            color_intrinsics=intr,
            rgb=rgb,
            depth=depth,
            depth_clean=clean,
            instances=instances,
            source=str(self.root / "images" / f"{name}.png"),
        )

    def __iter__(self) -> Iterator[FrameRecord]:
        for i in range(len(self)):
            yield self[i]


def export_labelled_arrays(arrays: Mapping[str, Any], root: str | Path, *, indices: Sequence[int] | None = None) -> int:
    """Write frames from the arrays of ``nyu_depth_v2_labeled.mat`` as h5py presents them (MATLAB's axes reversed:
    ``images`` (N, 3, W, H) uint8, ``depths`` / ``rawDepths`` (N, W, H) float metres, ``instances`` (N, W, H)).

    ``indices`` are 1-based frame numbers (default: all). Returns the number of frames written.
    """
    root = Path(root)
    if "images" not in arrays or "depths" not in arrays:
        raise DatasetError(f"NYUv2 arrays need 'images' and 'depths', got {sorted(arrays)}")
    count = int(arrays["images"].shape[0])
    chosen = range(1, count + 1) if indices is None else indices
    for index in chosen:
        if not 1 <= index <= count:
            raise DatasetError(f"NYUv2 frame index {index} outside 1..{count}")
        k, name = index - 1, _name(index)
        write_rgb(root / "images" / f"{name}.png", np.asarray(arrays["images"][k]).transpose(2, 1, 0))
        write_depth_png(root / "depths" / f"{name}.png", np.asarray(arrays["depths"][k], np.float32).T)
        if "rawDepths" in arrays:
            write_depth_png(root / "raw_depths" / f"{name}.png", np.asarray(arrays["rawDepths"][k], np.float32).T)
        if "instances" in arrays:
            import cv2

            (root / "instances").mkdir(parents=True, exist_ok=True)
            inst = np.ascontiguousarray(np.asarray(arrays["instances"][k]).T.astype(np.uint16))
            cv2.imwrite(str(root / "instances" / f"{name}.png"), inst)
    return len(chosen)


def write_splits(root: str | Path, train: Sequence[int], test: Sequence[int]) -> Path:
    path = Path(root) / "splits.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps({"train": [int(i) for i in train], "test": [int(i) for i in test]}) + "\n", encoding="utf-8"
    )
    return path


def extract_labelled_mat(mat_path: str | Path, root: str | Path, *, splits_mat: str | Path | None = None) -> int:
    """Extract ``nyu_depth_v2_labeled.mat`` (needs ``h5py``) and optionally the official ``splits.mat``."""
    mat_path = Path(mat_path)
    try:
        import h5py
    except ImportError as exc:
        raise DatasetError(f"reading {mat_path} (MATLAB v7.3 / HDF5) needs h5py: pip install h5py") from exc
    with h5py.File(mat_path, "r") as mat:
        arrays = {key: mat[key] for key in ("images", "depths", "rawDepths", "instances") if key in mat}
        written = export_labelled_arrays(arrays, root)
    if splits_mat is not None:
        from scipy.io import loadmat

        splits = loadmat(str(splits_mat))
        write_splits(root, np.ravel(splits["trainNdxs"]).tolist(), np.ravel(splits["testNdxs"]).tolist())
    return written
