"""The shipped Fast DDS participant profile and the environment that applies it.

Large images (640x480 32FC1 depth is 1.2 MB a frame) do not fit Fast DDS's default shared-memory segment: a best-effort
publisher on the defaults fragments every frame and almost all of them are lost. ``config/fastdds_profile.xml`` gives
each participant a 32 MiB shared-memory segment plus UDPv4, and still talks to participants on the defaults.

Fast DDS reads the profile from an environment variable when a participant is created, so the variables must be set
before ``rclpy.init`` (in this process) or in the environment of a child process:

- ``FASTDDS_DEFAULT_PROFILES_FILE`` for Fast DDS 3 (Jazzy, Kilted, and the PyPI ROS 2 wheels);
- ``FASTRTPS_DEFAULT_PROFILES_FILE`` for Fast DDS 2 (Humble, Iron). Fast DDS 3 prints a deprecation warning whenever
  this one is set, so it is set only when ``ROS_DISTRO`` names a Fast DDS 2 distribution.

A profile the user chose (either variable set and non-empty) always wins. ``FASTDDS_BUILTIN_TRANSPORTS`` is never set
here: a ``LARGE_DATA`` participant and a default participant exchanged nothing at all in our measurements.

This module is pure (no rclpy) so the launch file, the runner and the benchmarks can all use it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from pathlib import Path

from dcl_arc_ros.paths import config_file

PROFILE_ENV_VARS = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
"""The variables Fast DDS 3 and Fast DDS 2 read the default profiles file from, newest first."""

PROFILE_FILE_NAME = "fastdds_profile.xml"
"""The profile's file name in the package's config/ folder."""

FAST_DDS_2_DISTROS = frozenset({"foxy", "galactic", "humble", "iron"})
"""ROS 2 distributions whose Fast DDS (2.x) reads only the legacy ``FASTRTPS_DEFAULT_PROFILES_FILE``."""

BUILTIN_TRANSPORTS_ENV_VAR = "FASTDDS_BUILTIN_TRANSPORTS"
"""Fast DDS 3's builtin transport switch. Read for diagnostics only; this module never sets it."""


def profile_path() -> Path:
    """The absolute path of the shipped profile (config/fastdds_profile.xml in the install or checkout).

    Raises FileNotFoundError naming the path when the file is missing from the install.
    """
    path = config_file(PROFILE_FILE_NAME).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"the Fast DDS profile {path} is missing from the dcl_arc_ros install")
    return path


def user_profile(env: Mapping[str, str]) -> str | None:
    """The profiles file the user already chose in ``env``, or None when neither variable is set (or both are empty)."""
    for name in PROFILE_ENV_VARS:
        value = env.get(name, "")
        if value.strip():
            return value
    return None


def profile_env_vars(env: Mapping[str, str]) -> tuple[str, ...]:
    """The profile variables to set for the Fast DDS that ``env``'s ROS distribution uses: the Fast DDS 3 one, plus
    the legacy one when ``ROS_DISTRO`` is a Fast DDS 2 distribution (Humble, Iron)."""
    if env.get("ROS_DISTRO", "").strip().lower() in FAST_DDS_2_DISTROS:
        return PROFILE_ENV_VARS
    return PROFILE_ENV_VARS[:1]


def dds_environment(base: Mapping[str, str], *, profile: Path | None = None) -> dict[str, str]:
    """A copy of ``base`` that loads the shipped profile, unless the user already set one (see
    :func:`profile_env_vars` for which variables are set).

    When either profile variable is set in ``base`` (non-empty), the copy is returned unchanged: the user's choice wins,
    and the other variable is not filled in either. ``profile`` overrides the shipped file (tests, benchmarks).
    """
    env = dict(base)
    if user_profile(env) is None:
        path = str(profile if profile is not None else profile_path())
        for name in profile_env_vars(env):
            env[name] = path
    return env


def apply_dds_profile(environ: MutableMapping[str, str] | None = None) -> str | None:
    """Apply the shipped profile to ``environ`` (default: ``os.environ``); call it before ``rclpy.init``.

    Returns the profile path it set, or None when the user had already chosen a profile (nothing is changed then).
    """
    target: MutableMapping[str, str] = os.environ if environ is None else environ
    if user_profile(target) is not None:
        return None
    updated = dds_environment(target)
    path = updated[PROFILE_ENV_VARS[0]]
    for name in profile_env_vars(target):
        target[name] = updated[name]
    return path


def describe_dds_environment(env: Mapping[str, str]) -> str:
    """One line for logs: which Fast DDS profile a process with ``env`` will load, and any transport override."""
    chosen = user_profile(env)
    if chosen is None:
        text = "Fast DDS profile: none (Fast DDS defaults; best-effort large images will mostly be lost)"
    else:
        shipped = _shipped_profile_or_none()
        shipped_in_use = shipped is not None and _same_file(chosen, shipped)
        whose = "shipped large-segment profile" if shipped_in_use else "user profile"
        text = f"Fast DDS profile: {whose} {chosen}"
    transports = env.get(BUILTIN_TRANSPORTS_ENV_VAR, "").strip()
    if transports:
        text += f"; {BUILTIN_TRANSPORTS_ENV_VAR}={transports}"
        if transports.upper() == "LARGE_DATA":
            text += " (cannot talk to participants that do not use LARGE_DATA)"
    return text


def _shipped_profile_or_none() -> Path | None:
    try:
        return profile_path()
    except FileNotFoundError:
        return None


def _same_file(a: str, b: Path) -> bool:
    try:
        return Path(a).resolve() == b.resolve()
    except OSError:
        return False
