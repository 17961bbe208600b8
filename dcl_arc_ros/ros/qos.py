"""QoS profiles by name, as chosen by the ``input_qos`` / ``output_qos`` parameters, and their human description.

- ``sensor_data``: best effort, keep last 5, volatile: what camera drivers publish, and the default for inputs.
- ``reliable``: reliable, keep last 5, volatile: the default for outputs (it also matches best-effort subscribers).
- ``best_effort``: best effort, keep last 1: the least buffering, for the newest-frame-only case.

Large best-effort images across processes need the shipped Fast DDS profile on the publisher's side (see
``dcl_arc_ros.dds``); ``describe_qos`` and the no-input warning say so.
"""

from __future__ import annotations

from collections.abc import Callable

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
)

from dcl_arc_ros.ros.errors import ParameterError
from dcl_arc_ros.ros.params import QOS_CHOICES


def _sensor_data() -> QoSProfile:
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=5,
        reliability=ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.VOLATILE,
    )


def _reliable() -> QoSProfile:
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=5,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.VOLATILE,
    )


def _best_effort() -> QoSProfile:
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=1,
        reliability=ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.VOLATILE,
    )


QOS_PROFILES: dict[str, Callable[[], QoSProfile]] = {
    "sensor_data": _sensor_data,
    "reliable": _reliable,
    "best_effort": _best_effort,
}
assert tuple(QOS_PROFILES) == QOS_CHOICES, "params.QOS_CHOICES and qos.QOS_PROFILES must list the same names"


def qos_profile(name: str) -> QoSProfile:
    """A fresh QoSProfile for one of ``QOS_CHOICES``."""
    try:
        return QOS_PROFILES[name]()
    except KeyError:
        raise ParameterError(f"unknown QoS profile {name!r}; use one of: {', '.join(QOS_PROFILES)}") from None


def describe_qos(profile: QoSProfile) -> str:
    """E.g. ``best effort, keep last 5, volatile``."""
    reliability = {
        ReliabilityPolicy.BEST_EFFORT: "best effort",
        ReliabilityPolicy.RELIABLE: "reliable",
    }.get(profile.reliability, str(profile.reliability.name).lower())
    history = (
        f"keep last {profile.depth}" if profile.history == HistoryPolicy.KEEP_LAST else profile.history.name.lower()
    )
    durability = profile.durability.name.lower().replace("_", " ")
    return f"{reliability}, {history}, {durability}"


def is_best_effort(profile: QoSProfile) -> bool:
    return profile.reliability == ReliabilityPolicy.BEST_EFFORT


def incompatibility(subscriber: QoSProfile, publisher: QoSProfile) -> str | None:
    """Why a publisher with ``publisher`` QoS cannot reach a subscriber with ``subscriber`` QoS, or None."""
    if subscriber.reliability == ReliabilityPolicy.RELIABLE and publisher.reliability == ReliabilityPolicy.BEST_EFFORT:
        return "the publisher is best effort but this subscription is reliable (set input_qos:=sensor_data)"
    if subscriber.durability == DurabilityPolicy.TRANSIENT_LOCAL and publisher.durability == DurabilityPolicy.VOLATILE:
        return "the publisher is volatile but this subscription is transient local"
    return None
