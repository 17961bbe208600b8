"""Torch datasets: sample dict keys/shapes/dtypes, K-consistent crop and resize, batching, the source registry."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from dcl_arc_ros.data import bags
from dcl_arc_ros.data.errors import DatasetError
from dcl_arc_ros.data.torch_datasets import (
    CenterCrop,
    FrameDataset,
    RandomCrop,
    Resize,
    build_dataset,
    crop_record,
    record_to_sample,
    resize_record,
)
from dcl_arc_ros.sim.generate import EPOCH_NS, SceneRequest, toy_frames

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def bag_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ds")
    frames = toy_frames(
        SceneRequest(seed=4, frames=3, sensor="empirical", family="synthetic", camera="d435", width=80, height=60)
    )
    bags.write_bag(root / "bag", [dataclasses.replace(f, stamp_ns=EPOCH_NS + i) for i, f in enumerate(frames)])
    return root


@pytest.fixture(scope="module")
def record(bag_dir: Path) -> bags.FrameRecord:
    return next(bags.read_frames(bag_dir / "bag"))


def test_sample_has_every_documented_key_with_its_shape_and_dtype(record: bags.FrameRecord) -> None:
    s = record_to_sample(record)
    shapes = {k: (tuple(v.shape), v.dtype) for k, v in s.items()}
    one = (1, 60, 80)
    assert shapes == {
        "depth": (one, torch.float32),
        "valid": (one, torch.float32),
        "rgb": ((3, 60, 80), torch.float32),
        "depth_clean": (one, torch.float32),
        "clean_valid": (one, torch.float32),
        "normals": ((3, 60, 80), torch.float32),
        "instances": (one, torch.int64),
        "grasp_quality": (one, torch.float32),
        "grasp_cos2": (one, torch.float32),
        "grasp_sin2": (one, torch.float32),
        "grasp_width": (one, torch.float32),
        "intrinsics": ((4,), torch.float32),
    }
    invalid = ~np.isfinite(record.depth)
    assert invalid.any()
    np.testing.assert_array_equal(s["valid"][0].numpy(), (~invalid).astype(np.float32))
    assert torch.all(s["depth"][0][torch.from_numpy(invalid)] == 0)
    np.testing.assert_allclose(s["depth"][0].numpy()[~invalid], record.depth[~invalid])
    assert float(s["rgb"].min()) >= 0.0 and float(s["rgb"].max()) <= 1.0
    np.testing.assert_allclose(s["rgb"].numpy().transpose(1, 2, 0) * 255, record.rgb, atol=1e-3)
    k = record.intrinsics
    np.testing.assert_allclose(s["intrinsics"].numpy(), [k.fx, k.fy, k.cx, k.cy], rtol=1e-6)
    clean = record_to_sample(record, depth_from="clean")
    assert torch.equal(clean["depth"], clean["depth_clean"])


def _centre_hits_own_object(rec: bags.FrameRecord) -> list[bool]:
    hits = []
    for cx, cy, *_rest, inst in rec.grasp_info:
        u, v = round(float(cx)), round(float(cy))
        if 0 <= v < rec.instances.shape[0] and 0 <= u < rec.instances.shape[1]:
            hits.append(rec.instances[v, u] == int(inst))
    return hits


def test_crop_and_resize_keep_intrinsics_and_labels_on_the_pixels(record: bags.FrameRecord) -> None:
    assert _centre_hits_own_object(record) and all(_centre_hits_own_object(record))
    cropped = crop_record(record, 8, 6, 64, 48)
    np.testing.assert_array_equal(cropped.depth_clean, record.depth_clean[6:54, 8:72])
    assert cropped.intrinsics.cx == pytest.approx(record.intrinsics.cx - 8)
    assert all(_centre_hits_own_object(cropped))
    resized = resize_record(cropped, 32, 24)
    assert resized.intrinsics == cropped.intrinsics.resize(32, 24)
    assert all(_centre_hits_own_object(resized))
    # Object centres project where the resize maps their original pixels (u' = (u + 0.5) * s - 0.5).
    u0, v0, _ = cropped.intrinsics.project(record.object_poses[:, :3, 3])
    u1, v1, _ = resized.intrinsics.project(record.object_poses[:, :3, 3])
    np.testing.assert_allclose(u1, (u0 + 0.5) * 0.5 - 0.5, atol=1e-9)
    np.testing.assert_allclose(v1, (v0 + 0.5) * 0.5 - 0.5, atol=1e-9)
    # Grasp widths are in pixels, so they halve with the image.
    before = np.round(cropped.grasp_width[cropped.grasp_width > 0], 3)
    after = np.round(resized.grasp_width[resized.grasp_width > 0] * 2, 3)
    assert after.size and np.all(np.isin(after, before))
    np.testing.assert_allclose(resized.grasp_info[:, 3], cropped.grasp_info[:, 3] * 0.5, rtol=1e-6)
    assert np.all(np.isin(resized.instances, record.instances))  # nearest neighbour never invents ids
    with pytest.raises(DatasetError, match="aspect ratio"):
        resize_record(record, 80, 30)


def test_dataset_batches_with_random_crops_reproducibly(bag_dir: Path) -> None:
    ds = build_dataset("bags", bag_dir, transforms=[RandomCrop(48, 40), Resize(24, 20)])
    assert len(ds) == 3
    torch.manual_seed(0)
    a = next(iter(DataLoader(ds, batch_size=3)))
    torch.manual_seed(0)
    b = next(iter(DataLoader(ds, batch_size=3)))
    assert a["depth"].shape == (3, 1, 20, 24) and a["rgb"].shape == (3, 3, 20, 24)
    assert torch.equal(a["depth"], b["depth"]) and torch.equal(a["intrinsics"], b["intrinsics"])
    fixed = build_dataset("bags", bag_dir, transforms=[CenterCrop(40, 30)], keys=["depth", "valid", "intrinsics"])
    sample = fixed[1]
    assert set(sample) == {"depth", "valid", "intrinsics"}
    assert sample["depth"].shape == (1, 30, 40)


def test_missing_keys_and_unknown_sources_are_errors(record: bags.FrameRecord) -> None:
    bare = dataclasses.replace(record, rgb=None, depth_clean=None)
    ds = FrameDataset([bare], keys=["depth", "rgb"])
    with pytest.raises(DatasetError, match=r"lacks \['rgb'\]"):
        ds[0]
    with pytest.raises(DatasetError, match="no clean depth"):
        record_to_sample(bare, depth_from="clean")
    with pytest.raises(DatasetError, match="unknown data source 'imagenet'"):
        build_dataset("imagenet")


def test_sources_take_several_paths_and_concatenate_them(bag_dir: Path, tmp_path: Path) -> None:
    from dcl_arc_ros.data.folder import write_folder_sample
    from dcl_arc_ros.data.torch_datasets import SOURCES

    records = list(bags.read_frames(bag_dir / "bag"))
    for i, rec in enumerate(records):
        write_folder_sample(tmp_path / ("one" if i < 2 else "two"), f"f{i}", rec)
    folder = SOURCES["folder"](tmp_path / "one", tmp_path / "two")
    assert len(folder) == 3
    np.testing.assert_array_equal(folder[2].rgb, records[2].rgb)
    with pytest.raises(IndexError):
        folder[3]
    twice = build_dataset("bags", bag_dir / "bag", bag_dir)
    assert len(twice) == 6
    assert torch.equal(twice[4]["depth_clean"], twice[1]["depth_clean"])
    with pytest.raises(DatasetError, match="at least one bag"):
        build_dataset("bags")


def test_keys_select_topics_and_in_memory_reads_each_record_once() -> None:
    from dcl_arc_ros.data import bags
    from dcl_arc_ros.data.torch_datasets import InMemoryFrames, topics_for_keys

    topics = topics_for_keys(["depth_clean", "intrinsics"])
    assert topics == [bags.DEPTH_IMAGE, bags.GT_DEPTH, bags.DEPTH_INFO]  # sensor depth is always read
    assert set(topics_for_keys(["something_else"])) == set(bags.TOPICS)
    # clean depth as the sample's "depth": the ground-truth topic, and not the sensor one
    assert topics_for_keys(["depth", "valid", "rgb"], depth_from="clean") == [bags.GT_DEPTH, bags.COLOR_IMAGE]

    reads: list[int] = []

    class Counting:
        def __len__(self) -> int:
            return 3

        def __getitem__(self, index: int) -> object:
            reads.append(index)
            return f"record {index}"

    frames = InMemoryFrames(Counting())  # type: ignore[arg-type]
    assert [frames[i] for i in (0, 1, 0, -1, 2)] == ["record 0", "record 1", "record 0", "record 2", "record 2"]
    assert reads == [0, 1, 2]
    with pytest.raises(IndexError, match="3 samples"):
        frames[3]


def test_random_crop_can_stay_right_of_a_column() -> None:
    depth = np.tile(np.arange(64, dtype=np.float32), (20, 1))  # the value is the column
    record = bags.FrameRecord(stamp_ns=0, depth=depth, source="ramp")
    rng = np.random.default_rng(0)
    starts = {int(RandomCrop(16, 10, x_min=40)(record, rng).depth[0, 0]) for _ in range(200)}
    assert min(starts) >= 40 and max(starts) == 48  # every allowed start column is reachable
    assert len(starts) > 5
    with pytest.raises(DatasetError, match="right of column 50"):
        RandomCrop(16, 10, x_min=50)(record, rng)
