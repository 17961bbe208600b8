"""The shipped Fast DDS profile and the environment helpers that apply it (pure: no DDS traffic here)."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from dcl_arc_ros import dds

MIB = 1024 * 1024
FASTDDS, FASTRTPS = dds.PROFILE_ENV_VARS


def _local(tag: str) -> str:
    """Element name without its XML namespace."""
    return tag.rsplit("}", 1)[-1]


def _children(element: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in element if _local(child.tag) == name]


def _child_text(element: ET.Element, name: str) -> str:
    (child,) = _children(element, name)
    return (child.text or "").strip()


@pytest.fixture(scope="module")
def profile_xml() -> ET.Element:
    return ET.parse(dds.profile_path()).getroot()


def test_profile_env_vars_newest_first() -> None:
    assert dds.PROFILE_ENV_VARS == ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")


def test_profile_path_is_the_shipped_file() -> None:
    path = dds.profile_path()
    assert path.is_absolute() and path.is_file()
    assert path.name == "fastdds_profile.xml" and path.parent.name == "config"


def test_xml_declares_large_shm_and_udpv4_descriptors(profile_xml: ET.Element) -> None:
    assert _local(profile_xml.tag) == "dds"
    (profiles,) = _children(profile_xml, "profiles")
    (descriptors,) = _children(profiles, "transport_descriptors")
    by_type = {_child_text(d, "type"): d for d in _children(descriptors, "transport_descriptor")}
    assert set(by_type) == {"SHM", "UDPv4"}
    shm = by_type["SHM"]
    assert int(_child_text(shm, "segment_size")) == 32 * MIB
    assert int(_child_text(shm, "maxMessageSize")) == 16 * MIB
    # A whole 640x480 32FC1 frame must fit one shared-memory message, or it is fragmented and lost under best effort.
    assert int(_child_text(shm, "maxMessageSize")) >= 640 * 480 * 4


def test_xml_default_participant_uses_only_the_declared_transports(profile_xml: ET.Element) -> None:
    (profiles,) = _children(profile_xml, "profiles")
    (participant,) = _children(profiles, "participant")
    assert participant.get("is_default_profile") == "true"
    assert participant.get("profile_name")
    (rtps,) = _children(participant, "rtps")
    assert _child_text(rtps, "useBuiltinTransports") == "false"
    (user_transports,) = _children(rtps, "userTransports")
    used = {(t.text or "").strip() for t in _children(user_transports, "transport_id")}
    (descriptors,) = _children(profiles, "transport_descriptors")
    declared = {_child_text(d, "transport_id") for d in _children(descriptors, "transport_descriptor")}
    assert used == declared and len(used) == 2


def test_xml_never_asks_for_large_data(profile_xml: ET.Element) -> None:
    # Comments are not part of the parsed tree, so only real settings are checked here.
    values = [(e.text or "") for e in profile_xml.iter()] + [v for e in profile_xml.iter() for v in e.attrib.values()]
    assert not any("LARGE_DATA" in value for value in values)
    assert not any(_local(e.tag) == "builtinTransports" for e in profile_xml.iter())


def test_dds_environment_sets_the_fast_dds_3_variable_on_a_copy() -> None:
    base = {"PATH": "/usr/bin", "ROS_DOMAIN_ID": "7"}
    env = dds.dds_environment(base)
    assert env[FASTDDS] == str(dds.profile_path())
    assert FASTRTPS not in env, "Fast DDS 3 warns about the legacy variable whenever it is set"
    assert env["PATH"] == "/usr/bin" and env["ROS_DOMAIN_ID"] == "7"
    assert base == {"PATH": "/usr/bin", "ROS_DOMAIN_ID": "7"}, "the base mapping must not be modified"
    assert dds.BUILTIN_TRANSPORTS_ENV_VAR not in env


@pytest.mark.parametrize(("distro", "legacy"), [("humble", True), ("Iron", True), ("jazzy", False), ("kilted", False)])
def test_the_legacy_variable_only_for_fast_dds_2_distributions(distro: str, legacy: bool) -> None:
    env = dds.dds_environment({"ROS_DISTRO": distro})
    assert env[FASTDDS] == str(dds.profile_path())
    assert (env.get(FASTRTPS) == str(dds.profile_path())) is legacy


@pytest.mark.parametrize("user_var", dds.PROFILE_ENV_VARS)
def test_dds_environment_respects_a_user_profile(user_var: str) -> None:
    base = {user_var: "/opt/robot/my_profile.xml"}
    env = dds.dds_environment(base)
    assert env == base, "a user's profile wins and the other variable is not filled in"


def test_dds_environment_treats_empty_values_as_unset() -> None:
    env = dds.dds_environment({FASTDDS: "", FASTRTPS: "  "})
    assert env[FASTDDS] == str(dds.profile_path()) and env[FASTRTPS] == "  ", "an empty legacy value is left alone"


def test_dds_environment_never_touches_builtin_transports() -> None:
    assert dds.dds_environment({"FASTDDS_BUILTIN_TRANSPORTS": "UDPv4"})["FASTDDS_BUILTIN_TRANSPORTS"] == "UDPv4"
    assert "LARGE_DATA" not in dds.dds_environment({}).values()


def test_dds_environment_explicit_profile_override(tmp_path: Path) -> None:
    custom = tmp_path / "bench.xml"
    env = dds.dds_environment({"ROS_DISTRO": "humble"}, profile=custom)
    assert env[FASTDDS] == env[FASTRTPS] == str(custom)


def test_apply_dds_profile_on_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in dds.PROFILE_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ROS_DISTRO", "humble")
    applied = dds.apply_dds_profile()
    assert applied == str(dds.profile_path())
    assert os.environ[FASTDDS] == os.environ[FASTRTPS] == applied
    assert dds.apply_dds_profile() is None, "a profile is already set: the second call must change nothing"


def test_apply_dds_profile_leaves_a_user_profile_alone() -> None:
    environ = {FASTRTPS: "/etc/humble_profile.xml"}
    assert dds.apply_dds_profile(environ) is None
    assert environ == {FASTRTPS: "/etc/humble_profile.xml"}


def test_describe_dds_environment() -> None:
    assert "none" in dds.describe_dds_environment({})
    shipped = dds.describe_dds_environment(dds.dds_environment({}))
    assert "shipped" in shipped and str(dds.profile_path()) in shipped
    assert "user profile /x.xml" in dds.describe_dds_environment({FASTDDS: "/x.xml"})
    large = dds.describe_dds_environment({"FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA"})
    assert "LARGE_DATA" in large and "cannot talk" in large


def test_dds_module_is_pure() -> None:
    probe = "import sys, dcl_arc_ros.dds; sys.exit(1 if 'rclpy' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", probe], check=False, timeout=60).returncode == 0
