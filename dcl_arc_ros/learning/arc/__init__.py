"""ARC (Attend, Remove, Complete): monocular depth from a large synthetic set and a small real one.

Modules: ``attention`` (A), ``inpainting`` (I), ``translator`` (T), ``depth_predictor`` (D), their ``discriminators``,
``perceptual`` features and ``blocks`` (backbones). ``model`` holds the system and its single-graph inference path,
``variants`` the baselines and ablations, ``stages`` Algorithm 1 (modular coordinate descent) with ``runners`` (one
step per stage) and ``batches`` (data plumbing), ``datasets`` the dataset registry, ``export`` the ONNX + sidecar
export, ``config`` the typed configuration, ``toy_data`` procedural two-domain scenes for tests. Import from the
submodules; this package file stays import-light.
"""
