"""The residual cleaner's start value for holes (learning.nets.unet._hole_base)."""

from __future__ import annotations

import torch

from dcl_arc_ros.learning.nets.unet import _hole_base


def ramp_with_band(band: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    rows = torch.linspace(-0.5, 0.5, 120).view(1, 1, 120, 1).expand(1, 1, 120, 160).clone()
    valid = torch.ones_like(rows)
    valid[..., :band] = 0.0  # an invalid band along the left edge, as an active-stereo camera leaves
    return rows, valid, rows * valid - (1.0 - valid)  # holes carry the hole value -1


def test_a_wide_band_starts_from_the_nearby_readings_smoothly() -> None:
    rows, valid, depth = ramp_with_band(40)  # far wider than the 9x9 window
    base = _hole_base(depth, valid)
    band = base[0, 0, :, :40]
    assert torch.isfinite(base).all()
    step = float(rows[0, 0, 1, 0] - rows[0, 0, 0, 0])
    # Follows the readings row by row: no blocks (a nearest-neighbour upsampling made jumps of 2^k rows' worth).
    assert float((band[1:] - band[:-1]).abs().max()) < 1.5 * step
    # Inside the band the start stays near that row's depth: within 15% of the ramp's range (1.0) away from the top
    # and bottom edges, where coarse averaging pulls it towards the middle; the old start was 0 or the far limit.
    assert float((band[20:-20] - rows[0, 0, 20:-20, :40]).abs().max()) < 0.15
    assert float((band[40:80] - rows[0, 0, 40:80, :40]).abs().max()) < 0.05
    # Measured pixels are taken as they are.
    torch.testing.assert_close(base[0, 0, :, 40:] * 0 + depth[0, 0, :, 40:], rows[0, 0, :, 40:])


def test_small_holes_use_the_local_window_and_no_reading_gives_a_finite_value() -> None:
    rows, valid, depth = ramp_with_band(0)
    valid[..., 60, 80] = 0.0
    depth = rows * valid - (1.0 - valid)
    base = _hole_base(depth, valid)
    assert abs(float(base[0, 0, 60, 80] - rows[0, 0, 60, 80])) < 1e-3  # the symmetric 9x9 mean of a ramp
    nothing = _hole_base(torch.full((1, 1, 16, 16), -1.0), torch.zeros(1, 1, 16, 16))
    assert torch.isfinite(nothing).all()
