"""ARC (Attend, Remove, Complete): monocular depth from a large synthetic set and a small real one.

Modules: attention (A), inpainting (I), translator (T), depth_predictor (D), their discriminators and perceptual
features; model (the system and its single-graph inference path), variants (baselines and ablations) and stages
(Algorithm 1, modular coordinate descent). Import from the submodules; this package file stays import-light.
"""
