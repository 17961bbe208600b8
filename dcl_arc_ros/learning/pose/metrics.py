"""Pose evaluation metrics: symmetry-aware rotation error and the summary numbers of the pose results table.

Symmetric objects. The catalogue's primitives are symmetric, so "the" rotation of one is not unique and the plain
geodesic error punishes a correct answer (a box turned by 180 degrees about a face axis looks identical). The error
used for the results is therefore the distance to the *closest* equivalent ground truth, ``min_S d(R_pred, R_gt S)``
over the object's proper symmetry group S (the usual symmetry-aware rotation error, e.g. for T-LESS objects):

- ``box``: the catalogue draws three independent half-extents, so the group every box has is D2 (identity and the
  180-degree turns about x, y and z); a box with two near-equal sides has more symmetries, so its error is an upper
  bound;
- ``cylinder``: any turn about its axis (z) and the 180-degree flip of the axis, so the error is the angle between
  the predicted and true axis lines, ``arccos(|z_pred . z_gt|)``;
- ``sphere``: every rotation is correct, so a sphere has no rotation error (``nan``) and is left out of rotation
  statistics (it still counts for class accuracy);
- anything else (the ``random_urdfs`` meshes and distractors) is treated as asymmetric: the plain geodesic error.

The plain geodesic error is kept next to it, so the table can show what ignoring symmetry would report.

Box axes. The catalogue draws a box's three half-extents independently, so which edge the mesh calls x is arbitrary:
a 3 x 5 x 8 cm box at R and a 5 x 3 x 8 cm box at R turned 90 degrees about z are the same thing in every image, with
different labels. No network can tell them apart, so the labelled rotation of a box is not learnable and the D2 error
against it is noise. :func:`order_box_axes` relabels a box's axes by the extent seen along them (x the longest, z
the shortest), from the object's visible points in the object frame; with that order D2 is exactly the box's
symmetry (up to near-equal sides). Samples are relabelled this way for training and evaluation alike
(``PoseDataConfig.order_box_axes``).

Training targets. An MSE on the 6D form of a symmetric object's rotation asks the network for one of several equally
right answers that look the same in the crop, so it learns their average, which is none of them. The trainer can
therefore replace the target by a *canonical* member of its symmetry class (:func:`canonical_rotation`), a function
of what the crop shows: the identity for spheres, the rotation that takes +z onto the axis (chosen in the half-space
pointing away from the camera) for cylinders, and the D2 member closest to the identity for boxes. The loss stays an
MSE on the 6D form; the symmetry-aware error does not depend on which member is predicted.

A canonical member still jumps where two equivalent rotations swap places as the closest to the identity, so nearby
views can get far-apart targets. The alternative loss (``rotation_loss: symmetric_min_mse``) compares the prediction
with *every* equivalent rotation and keeps the smallest MSE, like the error above. :func:`equivalent_rotations` gives
those targets: ``R_gt S`` over :func:`symmetry_group` (D2 for boxes; for cylinders, turns about the axis in
``axial_steps`` steps, each with and without the flip, since the continuous group has no finite list; identity
otherwise). Spheres have no rotation to learn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np

from dcl_arc_ros.core.pose_pipeline import random_rotations

__all__ = [
    "SYMMETRY_BY_CLASS",
    "Symmetry",
    "canonical_rotation",
    "chance_rotation_error",
    "equivalent_rotations",
    "order_box_axes",
    "rotation_summary",
    "symmetric_rotation_error",
    "symmetry_group",
    "symmetry_of",
]

Symmetry = Literal["none", "box", "cylinder", "sphere"]

#: Catalogue class id -> symmetry (the primitives of ``dcl_arc_ros.sim.objects.PRIMITIVE_CLASS_IDS``).
SYMMETRY_BY_CLASS: dict[int, Symmetry] = {1000: "box", 1001: "cylinder", 1002: "sphere"}

_D2 = np.stack([np.eye(3), np.diag([1.0, -1.0, -1.0]), np.diag([-1.0, 1.0, -1.0]), np.diag([-1.0, -1.0, 1.0])])


def symmetry_of(catalogue_id: int) -> Symmetry:
    return SYMMETRY_BY_CLASS.get(int(catalogue_id), "none")


def _z_onto(axis: np.ndarray) -> np.ndarray:
    """The smallest rotation taking +z onto the unit vector ``axis`` (``axis`` must not point along -z)."""
    a = axis / np.linalg.norm(axis)
    v = np.cross([0.0, 0.0, 1.0], a)
    c = float(a[2])
    vx = np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])
    return np.eye(3) + vx + vx @ vx / (1.0 + c)


def canonical_rotation(rotation: np.ndarray, symmetry: str) -> np.ndarray:
    """The canonical member of ``rotation``'s symmetry class (the training target; see the module docstring)."""
    r = np.asarray(rotation, dtype=np.float64)
    if symmetry == "none":
        return r
    if symmetry == "sphere":
        return np.eye(3)
    if symmetry == "cylinder":
        axis = r[:, 2] if r[2, 2] >= 0 else -r[:, 2]  # the axis line, pointing away from the camera
        return _z_onto(axis)
    if symmetry == "box":
        members = r[None] @ _D2
        return members[int(np.argmax(np.trace(members, axis1=1, axis2=2)))]
    raise ValueError(f"unknown symmetry {symmetry!r}; expected none, box, cylinder or sphere")


def order_box_axes(rotation: np.ndarray, translation: np.ndarray, points: np.ndarray) -> np.ndarray:
    """A box's camera-frame rotation with its axes relabelled by extent: x the longest, z the shortest.

    ``rotation`` (3, 3) and ``translation`` (3,) place the box's frame (origin at its centre) in the camera frame;
    ``points`` (N, 3) are visible surface points in the camera frame. The extent along each axis is the 98th
    percentile of the points' absolute coordinate along it (what the visible part shows). The columns are permuted
    in that order and, where the permutation is odd, the last one is negated, so the result stays a proper
    rotation. With no points the rotation is returned unchanged.
    """
    r = np.asarray(rotation, dtype=np.float64)
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    pts = pts[np.all(np.isfinite(pts), axis=1)]
    if len(pts) == 0:
        return r.copy()
    local = (pts - np.asarray(translation, dtype=np.float64)) @ r  # object-frame coordinates
    extent = np.percentile(np.abs(local), 98.0, axis=0)
    ordered = r[:, np.argsort(-extent, kind="stable")]
    if np.linalg.det(ordered) < 0:
        ordered[:, 2] = -ordered[:, 2]
    return ordered


def _rot_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def symmetry_group(symmetry: str, axial_steps: int = 24) -> np.ndarray:
    """(K, 3, 3) proper symmetries S of an object (``R`` and ``R S`` look the same); identity first.

    ``cylinder`` has a continuous group: its turns about z are sampled every ``360 / axial_steps`` degrees, each also
    composed with the 180-degree flip about x, so K = 2 ``axial_steps``. ``sphere`` and ``none``: the identity only
    (a sphere's rotation is not learned at all; see :func:`equivalent_rotations`).
    """
    if symmetry in ("none", "sphere"):
        return np.eye(3)[None]
    if symmetry == "box":
        return _D2.copy()
    if symmetry == "cylinder":
        if axial_steps < 1:
            raise ValueError(f"axial_steps must be >= 1, got {axial_steps}")
        turns = np.stack([_rot_z(2.0 * np.pi * k / axial_steps) for k in range(axial_steps)])
        return np.concatenate([turns, turns @ np.diag([1.0, -1.0, -1.0])])
    raise ValueError(f"unknown symmetry {symmetry!r}; expected none, box, cylinder or sphere")


def equivalent_rotations(rotation: np.ndarray, symmetry: str, size: int, axial_steps: int = 24) -> np.ndarray:
    """(size, 3, 3): every ``rotation @ S`` of :func:`symmetry_group`, padded to ``size`` by repeating the first.

    The padding lets a batch stack objects of different symmetries; repeats do not change a minimum over the set.
    """
    group = symmetry_group(symmetry, axial_steps)
    if len(group) > size:
        raise ValueError(f"the {symmetry} group has {len(group)} members, more than size={size}")
    members = np.asarray(rotation, dtype=np.float64)[None] @ group
    return np.concatenate([members, np.repeat(members[:1], size - len(members), axis=0)])


def _geodesic(r1: np.ndarray, r2: np.ndarray) -> np.ndarray:
    trace = np.einsum("...ji,...ji->...", r1, r2)
    return np.arccos(np.clip((trace - 1.0) / 2.0, -1.0, 1.0))


def symmetric_rotation_error(r_pred: np.ndarray, r_gt: np.ndarray, symmetry: Sequence[str] | str) -> np.ndarray:
    """Per-object rotation error in radians: (N, 3, 3) predictions and ground truths -> (N,), ``nan`` for spheres.

    ``symmetry`` is one :data:`Symmetry` for all objects or one per object (see the module docstring).
    """
    rp = np.asarray(r_pred, dtype=np.float64).reshape(-1, 3, 3)
    rg = np.asarray(r_gt, dtype=np.float64).reshape(-1, 3, 3)
    if rp.shape != rg.shape:
        raise ValueError(f"prediction and ground-truth shapes differ: {rp.shape} vs {rg.shape}")
    kinds = [symmetry] * len(rp) if isinstance(symmetry, str) else list(symmetry)
    if len(kinds) != len(rp):
        raise ValueError(f"{len(kinds)} symmetries for {len(rp)} rotations")
    out = np.empty(len(rp))
    for i, kind in enumerate(kinds):
        if kind == "none":
            out[i] = _geodesic(rp[i], rg[i])
        elif kind == "box":
            out[i] = float(np.min(_geodesic(rp[i][None], rg[i][None] @ _D2)))
        elif kind == "cylinder":
            out[i] = float(np.arccos(np.clip(abs(float(rp[i][:, 2] @ rg[i][:, 2])), 0.0, 1.0)))
        elif kind == "sphere":
            out[i] = np.nan
        else:
            raise ValueError(f"unknown symmetry {kind!r}; expected none, box, cylinder or sphere")
    return out


def chance_rotation_error(symmetry: str, samples: int = 4000, seed: int = 0) -> float:
    """Median error (degrees) of a uniformly random prediction against a uniformly random ground truth.

    What a network that learned nothing scores: about 132 deg for asymmetric objects, 78 for boxes and 60 for
    cylinders (nan for spheres). Seeded, so a report shows the same number every time.
    """
    rng = np.random.default_rng(seed)
    errors = symmetric_rotation_error(random_rotations(samples, rng), random_rotations(samples, rng), symmetry)
    return float(np.degrees(np.median(errors))) if symmetry != "sphere" else float("nan")


def rotation_summary(errors_deg: np.ndarray, thresholds_deg: Sequence[float] = (15.0, 30.0)) -> Mapping[str, float]:
    """``rot_mean_deg``, ``rot_median_deg`` and ``rot_<t>`` (fraction under t degrees) of the finite errors."""
    e = np.asarray(errors_deg, dtype=np.float64)
    e = e[np.isfinite(e)]
    out: dict[str, float] = {"n_rot": float(e.size)}
    out["rot_mean_deg"] = float(e.mean()) if e.size else float("nan")
    out["rot_median_deg"] = float(np.median(e)) if e.size else float("nan")
    for t in thresholds_deg:
        out[f"rot_{int(t)}"] = float((e < t).mean()) if e.size else float("nan")
    return out
