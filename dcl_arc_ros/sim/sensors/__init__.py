"""Depth sensor models, chosen by name from :data:`SENSORS`.

* ``clean``: the rendered depth.
* ``empirical``: published Kinect/RealSense noise statistics (the DCL paper's "Simulation" baseline).
* ``active_stereo``: a projected IR speckle pattern, two IR views and OpenCV StereoSGBM (the "real-like" domain).
"""

from __future__ import annotations

from dcl_arc_ros.sim.errors import SensorError
from dcl_arc_ros.sim.sensors.active_stereo import ActiveStereoParams, ActiveStereoSensor
from dcl_arc_ros.sim.sensors.base import SceneContext, SensorModel
from dcl_arc_ros.sim.sensors.clean import CleanSensor
from dcl_arc_ros.sim.sensors.empirical import EmpiricalParams, EmpiricalSensor

SENSORS: dict[str, SensorModel] = {
    "clean": CleanSensor(),
    "empirical": EmpiricalSensor(),
    "active_stereo": ActiveStereoSensor(),
}


def get_sensor(name: str) -> SensorModel:
    try:
        return SENSORS[name]
    except KeyError:
        raise SensorError(f"unknown sensor model {name!r}; known: {', '.join(SENSORS)}") from None


__all__ = [
    "SENSORS",
    "ActiveStereoParams",
    "ActiveStereoSensor",
    "CleanSensor",
    "EmpiricalParams",
    "EmpiricalSensor",
    "SceneContext",
    "SensorModel",
    "get_sensor",
]
