"""The realism statistics recover what synthetic frames are built with: hole fraction, holes at depth edges and a
known noise-against-depth law."""

from __future__ import annotations

import numpy as np
import pytest

from dcl_arc_ros.core.errors import DepthError
from dcl_arc_ros.evaluation.realism import (
    RealismParams,
    compare_to_real,
    depth_edges,
    hole_mask,
    noise_curve_distance,
    planar_tile_noise,
    realism_stats,
    save_realism_figure,
)

H, W = 120, 160


def step_scene() -> np.ndarray:
    """Two fronto-parallel planes: 0.5 m left of column 80, 0.8 m right of it."""
    depth = np.full((H, W), 0.5, np.float32)
    depth[:, 80:] = 0.8
    return depth


def noise_law(z: np.ndarray) -> np.ndarray:
    return 0.0005 + 0.002 * z**2


def test_hole_fraction_counts_nan_zero_and_inf() -> None:
    rng = np.random.default_rng(0)
    depth = np.full((H, W), 1.0, np.float32)
    flat = rng.choice(H * W, size=1234, replace=False)
    depth.ravel()[flat[:400]] = np.nan
    depth.ravel()[flat[400:800]] = 0.0
    depth.ravel()[flat[800:]] = np.inf
    assert hole_mask(depth).sum() == 1234
    stats = realism_stats([depth, np.full((H, W), 1.0, np.float32)])
    assert stats.hole_fraction == pytest.approx(1234 / (2 * H * W))
    assert stats.hole_fraction_std == pytest.approx(np.std([1234 / (H * W), 0.0]))


def test_edges_found_at_the_step_and_not_on_noisy_planes() -> None:
    rng = np.random.default_rng(1)
    depth = step_scene() + rng.normal(0, 0.001, (H, W)).astype(np.float32)
    edges = depth_edges(depth)
    assert edges[:, 79:81].all()
    assert not edges[:, :78].any() and not edges[:, 82:].any()


@pytest.mark.parametrize("use_reference", [False, True])
def test_edge_hole_share_recovers_the_built_share(use_reference: bool) -> None:
    rng = np.random.default_rng(2)
    clean = step_scene()
    depth = clean + rng.normal(0, 0.001, (H, W)).astype(np.float32)
    depth[10:110, 79:82] = np.nan  # a 3 px shadow band on the discontinuity: 300 holes near the edge
    depth[20:40, 20:40] = np.nan  # a block inside the near plane: 400 holes away from any edge
    depth[60:70, 120:150] = 0.0  # a block inside the far plane: 300 more
    stats = realism_stats([depth], [clean] if use_reference else None)
    assert stats.hole_fraction == pytest.approx(1000 / (H * W))
    assert stats.edge_hole_share == pytest.approx(300 / 1000)


def test_edge_hole_share_is_one_when_every_hole_sits_on_an_edge() -> None:
    depth = step_scene()
    depth[:, 78:83] = np.nan
    assert realism_stats([depth]).edge_hole_share == pytest.approx(1.0)


def ramp_scene(rng: np.random.Generator, noisy: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Depth growing linearly down the image from 0.3 to 1.2 m (a plane in pixel coordinates), a box 0.1 m in front
    of it on the left, and white noise following :func:`noise_law`."""
    z = np.linspace(0.3, 1.2, H * 3, dtype=np.float32)[:, None].repeat(W * 3, axis=1)
    z[:, :100] -= 0.1
    noise = rng.normal(0, 1, z.shape).astype(np.float32) * noise_law(z).astype(np.float32)
    return (z + noise if noisy else z.copy()), z


@pytest.mark.parametrize("use_reference", [False, True])
def test_noise_curve_recovers_the_noise_law(use_reference: bool) -> None:
    rng = np.random.default_rng(3)
    frames, refs = zip(*(ramp_scene(rng) for _ in range(2)), strict=True)
    params = RealismParams(min_windows_per_bin=20)
    stats = realism_stats(list(frames), list(refs) if use_reference else None, params)
    centres = stats.noise.bin_centres()
    measured = np.asarray(stats.noise.median_std_m)
    populated = np.isfinite(measured)
    assert populated.sum() >= 12  # 0.3-1.2 m in 5 cm bins
    rel_err = np.abs(measured[populated] / noise_law(centres[populated]) - 1)
    assert rel_err.max() < 0.12, dict(zip(centres[populated].round(3), rel_err.round(3), strict=True))


def test_planar_rule_rejects_tiles_across_the_step() -> None:
    rng = np.random.default_rng(4)
    depth, _ = ramp_scene(rng)
    means, stds = planar_tile_noise(depth)
    # The box edge (column 100) is a 0.1 m step: a tile containing it would have a residual of centimetres.
    assert stds.max() < 3 * noise_law(1.2)
    # ... while nearly every tile away from it is kept (7 px tiles: 51 x 68 tiles, one column of them straddles it)
    assert means.size > 0.9 * (480 // 7 * 51)


def test_noiseless_planes_are_planar_with_either_reference() -> None:
    rng = np.random.default_rng(5)
    depth, clean = ramp_scene(rng, noisy=False)
    for ref in (None, clean):
        _, stds = planar_tile_noise(depth, ref)
        assert stds.size > 3000
        assert np.median(stds) < 1e-5


def test_compare_to_real_prefers_the_matching_domain() -> None:
    rng = np.random.default_rng(6)
    real = [ramp_scene(rng)[0] for _ in range(2)]
    for r in real:
        r[:, 98:103] = np.nan
    close = [ramp_scene(rng)[0] for _ in range(2)]
    for c in close:
        c[:, 97:103] = np.nan
    far, clean = ramp_scene(rng, noisy=False)
    far = far + (0.3 * noise_law(clean) * rng.normal(0, 1, far.shape)).astype(np.float32)  # 3x too smooth
    stats = {"real": realism_stats(real), "close": realism_stats(close), "far": realism_stats([far])}
    dist = compare_to_real(stats)
    assert dist["close"]["hole_fraction_abs_diff"] < dist["far"]["hole_fraction_abs_diff"]
    assert dist["close"]["noise_mean_abs_log_ratio"] < 0.1 < dist["far"]["noise_mean_abs_log_ratio"]
    assert dist["far"]["edge_hole_share_abs_diff"] is None  # no holes at all: the share is undefined
    same, bins = noise_curve_distance(stats["real"].noise, stats["real"].noise)
    assert same == 0.0 and bins >= 12


def test_stats_are_json_safe_and_inputs_checked(tmp_path) -> None:
    import json

    depth = step_scene()
    stats = realism_stats([depth])  # no holes: NaN shares become None
    text = json.dumps(stats.to_dict(), allow_nan=False)
    assert '"edge_hole_share": null' in text
    with pytest.raises(DepthError):
        realism_stats([])
    with pytest.raises(DepthError):
        realism_stats([depth], [depth, depth])
    with pytest.raises(DepthError):
        RealismParams(window=2)


def test_figure_is_written(tmp_path) -> None:
    rng = np.random.default_rng(7)
    depth, clean = ramp_scene(rng)
    depth[:, 98:103] = np.nan
    stats = {"real": realism_stats([depth]), "clean": realism_stats([clean])}
    out = save_realism_figure(tmp_path / "fig" / "realism.png", {"real": depth, "clean": clean}, stats, title="t")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
