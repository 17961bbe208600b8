"""dcl_arc_ros: sim-to-real depth perception for ROS 2.

This file is the index of the package: every executable is a console script below, and launch/, config/ and the
shipped models are installed under share/dcl_arc_ros so `ros2 launch dcl_arc_ros perception.launch.py` finds them.
"""

from __future__ import annotations

from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "dcl_arc_ros"

ROS_WHEELS = [
    # Real ROS 2 client libraries as wheels, for machines with no ROS install. In a ROS 2 workspace these come from
    # the distribution instead (package.xml), so this extra is not needed there.
    "ros-rclpy",
    "ros-sensor-msgs",
    "ros-geometry-msgs",
    "ros-std-msgs",
    "ros-visualization-msgs",
    "ros-diagnostic-msgs",
    "ros-rmw-fastrtps-cpp",
]

setup(
    name=PACKAGE,
    version="0.1.0",
    description="Sim-to-real depth perception for ROS 2: DCL depth synthesis, ARC depth, GG-CNN grasps, poses.",
    long_description=Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="BSD-3-Clause",
    python_requires=">=3.10",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    include_package_data=True,
    package_data={PACKAGE: ["resources/*"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
        (f"share/{PACKAGE}/models", glob("models/*.onnx") + glob("models/*.json")),
    ],
    install_requires=[
        "numpy>=1.24",
        "opencv-python-headless>=4.8",
        "pyyaml>=6",
        "onnxruntime>=1.17",
    ],
    extras_require={
        "ros": ROS_WHEELS,
        "sim": ["pybullet==3.2.7", "rosbags>=0.10", "tqdm>=4.60"],
        "train": [
            # Pinned: 2.13.0 is the CPU build available locally; an unpinned torch pulls a multi-GB CUDA build.
            "torch==2.13.0",
            "onnx>=1.16",
            "onnxscript>=0.5",
            "tensorboard>=2.15",
            "tqdm>=4.60",
            "matplotlib>=3.7",
            "scikit-image>=0.22",
            "pybullet==3.2.7",
            "rosbags>=0.10",
        ],
        "test": [
            "pytest>=8",
            "pytest-timeout>=2.2",
            "mcap>=1.1",
            "mcap-ros2-support>=0.5",
            "scikit-image>=0.22",
            "colcon-common-extensions>=0.3",
            "catkin-pkg>=1.0",
            "ruff>=0.6",
            "mypy>=1.10",
        ],
        # Only to extract the official NYUv2 labelled .mat file once (dcl_arc_ros.data.nyuv2.extract_labelled_mat).
        "nyu": ["h5py>=3"],
        # Never installed by default: both need an NVIDIA GPU to run.
        # TensorRT 11 dropped the FP16 builder flag this package uses; cuda-python manages device buffers.
        "gpu": ["onnxruntime-gpu>=1.17", "tensorrt>=10,<11", "cuda-python>=12"],
    },
    zip_safe=True,
    entry_points={
        "console_scripts": [
            # ROS 2 nodes (executable names used by the launch file, the runner and `ros2 run`).
            f"depth_cleaner = {PACKAGE}.ros.depth_cleaner:main",
            f"arc_depth = {PACKAGE}.ros.arc_depth:main",
            f"grasp_detector = {PACKAGE}.ros.grasp_detector:main",
            f"pose_estimator = {PACKAGE}.ros.pose_estimator:main",
            # The graph without ros2 launch.
            f"dcl-arc-perception = {PACKAGE}.runner:main",
            # Synthetic training bags.
            f"dcl-arc-generate = {PACKAGE}.sim.generate:main",
            # Replay a bag onto the camera topics.
            f"dcl-arc-play = {PACKAGE}.bag_player:main",
        ],
    },
)
