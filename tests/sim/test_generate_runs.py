"""dcl-arc-generate: determinism, shards, resumption after interruption, workers, manifest, CLI summary."""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from dcl_arc_ros.data import bags
from dcl_arc_ros.data.errors import GenerateError, ManifestError
from dcl_arc_ros.data.frame import Frame
from dcl_arc_ros.sim import generate as gen
from dcl_arc_ros.sim.manifest import GenerateConfig, parse_shard, plan_shards, read_manifest, scene_seed

SMALL = {
    "frames_per_scene": 2,
    "sensor": "empirical",
    "width": 48,
    "height": 36,
    "renderer": "toy",
    "scenes_per_bag": 2,
}


def _config(**overrides) -> GenerateConfig:
    return GenerateConfig(**{"scenes": 5, "seed": 7, **SMALL, **overrides})


def _all_records(out: Path) -> list[bags.FrameRecord]:
    records = []
    for bag in sorted(p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")):
        records.extend(bags.read_frames(bag))
    return records


def test_same_seed_gives_identical_arrays_and_another_seed_does_not(tmp_path: Path) -> None:
    a = _all_records(_run(tmp_path / "a", _config()))
    b = _all_records(_run(tmp_path / "b", _config()))
    c = _all_records(_run(tmp_path / "c", _config(seed=8)))
    assert len(a) == len(b) == len(c) == 10
    for ra, rb in zip(a, b, strict=True):
        assert ra.stamp_ns == rb.stamp_ns
        for name in ("rgb", "depth", "depth_clean", "normals", "instances", "grasp_quality", "object_poses"):
            np.testing.assert_array_equal(getattr(ra, name), getattr(rb, name), err_msg=name)
    assert not np.array_equal(a[0].depth_clean, c[0].depth_clean)


def _run(out: Path, config: GenerateConfig, **kwargs) -> Path:
    gen.generate(config, out, progress=False, **kwargs)
    return out


def test_stamps_run_at_the_camera_rate_across_bags(tmp_path: Path) -> None:
    config = _config(fps=15.0)
    records = _all_records(_run(tmp_path, config))
    stamps = np.array([r.stamp_ns for r in records])
    np.testing.assert_allclose(np.diff(stamps), 1e9 / 15.0, atol=1)
    assert stamps[0] == gen.EPOCH_NS


def test_shards_partition_the_bags_by_scene_range() -> None:
    config = _config(scenes=11)
    for count in (1, 2, 3, 7):
        shards = plan_shards(config, count)
        names = [b.name for s in shards for b in s.bags]
        assert names == [b.name for b in plan_shards(config, 1)[0].bags]  # every bag once, in scene order
        ranges = [s.scene_range for s in shards if s.bags]
        assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    assert parse_shard("2/4") == (2, 4)
    for bad in ("4/4", "1", "a/b", "0/0"):
        with pytest.raises(ManifestError):
            parse_shard(bad)
    assert scene_seed(7, 0) != scene_seed(7, 1) != scene_seed(8, 0)


def test_shards_fill_the_manifest_and_reruns_skip_finished_bags(tmp_path: Path) -> None:
    config = _config()
    first = gen.generate(config, tmp_path, shard=(0, 2), progress=False)
    assert [r.name for r in first.written] == [b.name for b in plan_shards(config, 2)[0].bags]
    manifest = read_manifest(tmp_path)
    assert [s["state"] for s in manifest["shards"]] == ["done", "pending"]
    assert manifest["shards"][0]["bags"][0]["frames"] == 4

    second = gen.generate(config, tmp_path, shard=(1, 2), progress=False)
    assert second.written and not second.skipped
    again = gen.generate(config, tmp_path, progress=False)
    assert again.written == () and len(again.skipped) == config.bag_count
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert [s["state"] for s in manifest["shards"]] == ["done"]
    assert sum(b["frames"] for b in manifest["shards"][0]["bags"]) == 10


def test_rerun_with_other_options_is_refused(tmp_path: Path) -> None:
    gen.generate(_config(scenes=1), tmp_path, progress=False)
    with pytest.raises(ManifestError, match="sensor: 'empirical' on disk, 'clean' now"):
        gen.generate(_config(scenes=1, sensor="clean"), tmp_path, progress=False)


def _flaky_source(fail_scene_seed: int):
    def source(request: gen.SceneRequest) -> Iterator[Frame]:
        for i, frame in enumerate(gen.toy_frames(request)):
            if request.seed == fail_scene_seed and i == 1:
                raise KeyboardInterrupt  # the user pressed Ctrl-C half-way through this bag
            yield frame

    return source


def test_interrupted_run_keeps_finished_bags_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config(renderer="flaky")
    monkeypatch.setitem(gen.FRAME_SOURCES, "flaky", _flaky_source(scene_seed(config.seed, 3)))
    with pytest.raises(KeyboardInterrupt):
        gen.generate(config, tmp_path, progress=False)
    finished = sorted(p.name for p in tmp_path.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert finished == ["scenes_000000-000001"]  # the bag holding scene 3 never appears under its final name
    states = [b["state"] for b in read_manifest(tmp_path)["shards"][0]["bags"]]
    assert states == ["done", "incomplete", "pending"]

    monkeypatch.setitem(gen.FRAME_SOURCES, "flaky", gen.toy_frames)
    resumed = gen.generate(config, tmp_path, progress=False)
    assert resumed.skipped == ("scenes_000000-000001",)
    assert [r.name for r in resumed.written] == ["scenes_000002-000003", "scenes_000004-000004"]
    assert not (tmp_path / ".partial").exists()
    assert len(_all_records(tmp_path)) == 10


def test_workers_render_in_other_processes_and_produce_the_same_bags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid_log = tmp_path / "pids.txt"

    def logged(request: gen.SceneRequest) -> Iterator[Frame]:
        with pid_log.open("a") as handle:
            handle.write(f"{os.getpid()}\n")
        yield from gen.toy_frames(request)

    monkeypatch.setitem(gen.FRAME_SOURCES, "logged", logged)
    config = _config(scenes=4, scenes_per_bag=3, renderer="logged")
    serial = _all_records(_run(tmp_path / "serial", config))
    assert set(pid_log.read_text().split()) == {str(os.getpid())}
    pid_log.unlink()
    parallel = _all_records(_run(tmp_path / "parallel", config, workers=2))
    renderers = set(pid_log.read_text().split())
    assert renderers and str(os.getpid()) not in renderers
    assert len(serial) == len(parallel) == 8
    for a, b in zip(serial, parallel, strict=True):
        assert a.stamp_ns == b.stamp_ns
        np.testing.assert_array_equal(a.depth, b.depth)
        np.testing.assert_array_equal(a.rgb, b.rgb)


def test_renderer_giving_the_wrong_frame_count_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def short(request: gen.SceneRequest) -> Iterator[Frame]:
        yield from list(gen.toy_frames(request))[:1]

    monkeypatch.setitem(gen.FRAME_SOURCES, "short", short)
    with pytest.raises(GenerateError, match="gave 1 frames for scene 0, expected 2"):
        gen.generate(_config(scenes=1, renderer="short"), tmp_path, progress=False)


def test_cli_prints_a_summary_and_writes_sqlite3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "--out",
        str(tmp_path),
        "--scenes",
        "3",
        "--frames-per-scene",
        "2",
        "--sensor",
        "clean",
        "--seed",
        "1",
        "--storage",
        "sqlite3",
        "--renderer",
        "toy",
        "--width",
        "40",
        "--height",
        "30",
        "--camera",
        "kinect_v1",
        "--no-progress",
        "--scenes-per-bag",
        "2",
    ]
    assert gen.main(argv) == 0
    out = capsys.readouterr().out
    assert "wrote 2 bag(s), skipped 0 finished: 6 frames" in out
    assert "grasps" in out and "frames/s" in out
    assert sorted(p.name for p in tmp_path.glob("*/*.db3")) == ["scenes_000000-000001.db3", "scenes_000002-000002.db3"]
    assert gen.main(argv) == 0
    assert "wrote 0 bag(s), skipped 2 finished" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        gen.main([*argv[:-2], "--shard", "3/2"])
    assert exc.value.code == 2


def test_pybullet_renderer_bags_are_deterministic_and_complete(tmp_path: Path) -> None:
    pytest.importorskip("dcl_arc_ros.sim.pipeline", reason="the PyBullet renderer has not landed")
    config = GenerateConfig(
        scenes=1,
        frames_per_scene=2,
        sensor="empirical",
        seed=3,
        width=160,
        height=120,
        renderer="pybullet",
        camera="sr300",
    )
    a = _all_records(_run(tmp_path / "a", config))
    b = _all_records(_run(tmp_path / "b", config))
    assert len(a) == len(b) == 2
    for ra, rb in zip(a, b, strict=True):
        assert ra.rgb.shape == (120, 160, 3)
        assert ra.intrinsics.width == 160 and ra.intrinsics.fx == pytest.approx(476.05 / 4, rel=1e-3)
        for name in ("rgb", "depth", "depth_clean", "normals", "instances", "grasp_quality", "object_poses"):
            np.testing.assert_array_equal(getattr(ra, name), getattr(rb, name), err_msg=name)
        assert ra.object_info.shape[0] > 0 and np.isfinite(ra.depth).mean() > 0.5
    stamps = [r.stamp_ns for r in a]
    assert stamps == [gen.EPOCH_NS, gen.EPOCH_NS + round(1e9 / 30)]
