"""core.files.atomic_write_bytes: readable artefacts, nothing half-written."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from dcl_arc_ros.core.files import atomic_write_bytes


def test_written_file_is_world_readable_and_complete(tmp_path: Path) -> None:
    path = atomic_write_bytes(tmp_path / "sub" / "model.json", b'{"a": 1}')
    assert path.read_bytes() == b'{"a": 1}'
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # an installed sidecar must be readable by every user
    assert [p.name for p in path.parent.iterdir()] == ["model.json"]  # no temporary file left


def test_failure_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = atomic_write_bytes(tmp_path / "m.json", b"old")
    with pytest.raises(TypeError):
        atomic_write_bytes(path, "not bytes")  # type: ignore[arg-type]
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]
