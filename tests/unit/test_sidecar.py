"""Model sidecar: round trip, validation errors that name the file and the field, hashing helpers."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from dcl_arc_ros.core.errors import SidecarError
from dcl_arc_ros.core.sidecar import (
    ModelSidecar,
    TensorSpec,
    config_sha256,
    read_sidecar,
    sha256_file,
    sidecar_path_for,
    write_sidecar,
)


def make_sidecar(**changes: Any) -> ModelSidecar:
    values: dict[str, Any] = {
        "name": "cleaner",
        "task": "depth_to_depth",
        "model_version": "1.2.0",
        "inputs": (TensorSpec("depth", (1, 1, 240, 320), "float32", "depth", "normalised"),),
        "outputs": (TensorSpec("depth_out", (1, 1, 240, 320), "float32", "depth", "normalised"),),
        "deploy_resolution": (240, 320),
        "normalisation": {"depth": {"kind": "range", "min_m": 0.0, "max_m": 4.0}},
        "training_config_sha256": config_sha256({"lr": 2e-4}),
        "model_sha256": "",
        "extra": {"note": "test"},
    }
    values.update(changes)
    return ModelSidecar(**values)


def test_sidecar_path_for() -> None:
    assert sidecar_path_for(Path("models/cleaner.onnx")) == Path("models/cleaner.json")
    assert sidecar_path_for("a/b.engine") == Path("a/b.json")


def test_round_trip(tmp_path: Path) -> None:
    sidecar = make_sidecar()
    path = tmp_path / "cleaner.json"
    write_sidecar(sidecar, path)
    assert read_sidecar(path) == sidecar
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_write_is_atomic_replacement(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    write_sidecar(make_sidecar(model_version="1"), path)
    write_sidecar(make_sidecar(model_version="2"), path)
    assert read_sidecar(path).model_version == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]


def test_write_refuses_an_invalid_sidecar(tmp_path: Path) -> None:
    with pytest.raises(SidecarError, match="task"):
        write_sidecar(make_sidecar(task="segmentation"), tmp_path / "m.json")
    assert not (tmp_path / "m.json").exists()


def test_lookups() -> None:
    sidecar = make_sidecar()
    assert sidecar.input("depth").semantic == "depth"
    assert sidecar.outputs_with_semantic("depth")[0].name == "depth_out"
    assert sidecar.normalisation_for(sidecar.inputs[0]) == {"kind": "range", "min_m": 0.0, "max_m": 4.0}
    with pytest.raises(KeyError, match="depth_out"):
        sidecar.output("missing")


def write_json(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def valid_dict() -> dict[str, Any]:
    return make_sidecar().to_dict()


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.pop("name"), "name"),
        (lambda d: d.update(task="segmentation"), "task"),
        (lambda d: d.update(model_version=3), "model_version"),
        (lambda d: d.update(inputs=[]), "inputs"),
        (lambda d: d["inputs"][0].update(shape=[1, 0, 4]), "inputs[0].shape"),
        (lambda d: d["inputs"][0].update(dtype="float31"), "inputs[0].dtype"),
        (lambda d: d["inputs"][0].pop("semantic"), "inputs[0].semantic"),
        (lambda d: d["outputs"].append(dict(d["outputs"][0])), "outputs"),
        (lambda d: d.update(deploy_resolution=[240]), "deploy_resolution"),
        (lambda d: d.update(deploy_resolution=[240, True]), "deploy_resolution"),
        (lambda d: d["normalisation"]["depth"].update(kind="log"), "normalisation.depth.kind"),
        (lambda d: d["normalisation"]["depth"].pop("max_m"), "normalisation.depth.max_m"),
        (lambda d: d["normalisation"]["depth"].update(min_m=5.0), "normalisation.depth"),
        (
            lambda d: d["normalisation"].update(crop={"kind": "mean_subtract_clip", "clip": 0}),
            "normalisation.crop.clip",
        ),
        (
            lambda d: d["normalisation"].update(rgb={"kind": "affine", "scale": "2/255", "offset": -1}),
            "normalisation.rgb.scale",
        ),
        (lambda d: d.update(training_config_sha256="abc"), "training_config_sha256"),
        (lambda d: d.update(model_sha256="XYZ"), "model_sha256"),
        (lambda d: d.update(format_version=99), "format_version"),
        (lambda d: d.update(extra=[]), "extra"),
    ],
)
def test_invalid_fields_are_named_with_the_file(tmp_path: Path, mutate: Any, field: str) -> None:
    data = valid_dict()
    mutate(data)
    path = write_json(tmp_path, data)
    with pytest.raises(SidecarError) as info:
        read_sidecar(path)
    message = str(info.value)
    assert str(path) in message
    assert f"field {field!r}" in message


def test_missing_and_malformed_files_are_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(SidecarError, match=re.escape(str(missing)) + ".*not found"):
        read_sidecar(missing)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(SidecarError, match=re.escape(str(broken)) + ".*not valid JSON"):
        read_sidecar(broken)
    array = write_json(tmp_path, [1, 2])
    with pytest.raises(SidecarError, match="top level"):
        read_sidecar(array)


def test_optional_fields_default(tmp_path: Path) -> None:
    data = valid_dict()
    del data["format_version"], data["extra"]
    for spec in data["inputs"]:
        del spec["units"]
    sidecar = read_sidecar(write_json(tmp_path, data))
    assert sidecar.format_version == 1 and sidecar.extra == {} and sidecar.inputs[0].units == ""


def test_dynamic_dims_are_allowed(tmp_path: Path) -> None:
    data = valid_dict()
    data["inputs"][0]["shape"] = [-1, 1, -1, -1]
    assert read_sidecar(write_json(tmp_path, data)).inputs[0].shape == (-1, 1, -1, -1)


def test_sha256_file_matches_hashlib(tmp_path: Path) -> None:
    payload = bytes(range(256)) * 9000  # > 1 chunk
    path = tmp_path / "blob.bin"
    path.write_bytes(payload)
    assert sha256_file(path) == hashlib.sha256(payload).hexdigest()


def test_config_sha256_is_stable_and_sensitive() -> None:
    a = {"lr": 2e-4, "betas": (0.5, 0.999), "nested": {"b": 1, "a": [1, 2]}, "path": Path("x/y")}
    b = {"path": Path("x/y"), "nested": {"a": [1, 2], "b": 1}, "betas": [0.5, 0.999], "lr": 2e-4}
    assert config_sha256(a) == config_sha256(b)
    assert len(config_sha256(a)) == 64
    assert config_sha256({**a, "lr": 1e-4}) != config_sha256(a)
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        config_sha256({"f": object()})


def test_every_normalisation_kind_round_trips(tmp_path: Path) -> None:
    norm = {
        "depth": {"kind": "range", "min_m": 0.0, "max_m": 4.0, "invalid_value_m": 0.0},
        "depth_out": {"kind": "metres", "max_m": 6.0},
        "rgb": {"kind": "affine", "scale": 2 / 255, "offset": -1.0},
        "features": {"kind": "mean_std", "mean": 0.5, "std": 0.25},
        "crop": {"kind": "mean_subtract_clip", "clip": 1.0},
    }
    path = tmp_path / "m.json"
    write_sidecar(make_sidecar(normalisation=norm), path)
    assert read_sidecar(path).normalisation == norm
