"""Where the package's shared files live: config/, launch/ and models/.

Three installs are supported and looked up in this order:
1. a ROS 2 workspace (colcon): ``<prefix>/share/dcl_arc_ros`` found through the ament index;
2. a source checkout or editable pip install: the repository root next to this package;
3. a plain pip install: ``<sys.prefix>/share/dcl_arc_ros`` (setup.py data_files).
"""

from __future__ import annotations

import contextlib
import sys
from functools import lru_cache
from pathlib import Path

PACKAGE = "dcl_arc_ros"


def _candidates() -> list[Path]:
    found: list[Path] = []
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        # OSError: no AMENT_PREFIX_PATH (no sourced ROS install).
        with contextlib.suppress(PackageNotFoundError, ValueError, LookupError, OSError):
            found.append(Path(get_package_share_directory(PACKAGE)))
    except ImportError:
        pass
    found.append(Path(__file__).resolve().parents[1])
    found.append(Path(sys.prefix) / "share" / PACKAGE)
    return found


@lru_cache(maxsize=1)
def share_dir() -> Path:
    """The first install location that holds ``config/perception.yaml``."""
    candidates = _candidates()
    for candidate in candidates:
        if (candidate / "config" / "perception.yaml").is_file():
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(f"cannot find the {PACKAGE} share directory (config/perception.yaml); tried: {tried}")


def config_file(name: str) -> Path:
    """A file shipped in config/, e.g. ``config_file("perception.yaml")``."""
    return share_dir() / "config" / name


def models_dir() -> Path:
    """The folder of shipped deploy-sized models (*.onnx + *.json sidecars)."""
    return share_dir() / "models"
