"""The datasets ARC trains on, built by name from the config (an explicit registry; tests inject their own).

A factory takes the dataset's config block, the whole ARC config and the domain ("synthetic" or "real") and returns a
torch Dataset whose samples are {"rgb": (3, H, W) [0, 1], "depth": (1, H, W) metres, 0 = invalid, "valid": (1, H, W)}.
"""

from __future__ import annotations

from collections.abc import Callable

from torch.utils.data import Dataset, Subset

from dcl_arc_ros.learning.arc.batches import ARCData, Tensors
from dcl_arc_ros.learning.arc.config import ARCConfig, DatasetConfig
from dcl_arc_ros.learning.arc.errors import ARCConfigError
from dcl_arc_ros.learning.arc.toy_data import ToySceneDataset

DatasetFactory = Callable[[DatasetConfig, ARCConfig, str], Dataset[Tensors]]


def _toy(spec: DatasetConfig, config: ARCConfig, domain: str) -> Dataset[Tensors]:
    options = dict(spec.options)
    toy_domain = options.pop("domain", domain)
    seed = options.pop("seed", config.seed)
    if options:
        raise ARCConfigError(f"data.{domain}.options: unknown toy option(s) {sorted(options)} (known: domain, seed)")
    if toy_domain not in ("synthetic", "real"):
        raise ARCConfigError(f"data.{domain}.options.domain = {toy_domain!r}, expected 'synthetic' or 'real'")
    split_seed = seed + 1000 * (spec.split != "train")  # other splits are other frames
    return ToySceneDataset(spec.size or 64, config.model.height, config.model.width, domain=toy_domain, seed=split_seed)


def _frames(spec: DatasetConfig, config: ARCConfig, domain: str) -> Dataset[Tensors]:
    """A data-pipeline source (bags, folder, nyuv2, middlebury, castel), resized to the training resolution.

    ``root`` may list several paths separated by commas. Options: ``depth_from`` ("clean" by default for the
    synthetic set, "sensor" for the real one: a real labelled set only has what its sensor measured); any other
    option goes to the source's factory. ``size`` > 0 keeps the first ``size`` frames.
    """
    from dcl_arc_ros.data.torch_datasets import Resize, build_dataset  # lazy: the data pipeline's dependencies

    options = dict(spec.options)
    # "domain" is the toy generator's option. The default real config carries it, and a partial YAML that only sets
    # kind/root merges into those defaults, so drop it here rather than hand it to a data source that refuses it.
    options.pop("domain", None)
    depth_from = options.pop("depth_from", "clean" if domain == "synthetic" else "sensor")
    roots = [r.strip() for r in spec.root.split(",") if r.strip()]
    dataset = build_dataset(
        spec.kind,
        *roots,
        transforms=[Resize(config.model.width, config.model.height)],
        depth_from=depth_from,
        keys=("rgb", "depth", "valid"),
        **options,
    )
    if spec.size and spec.size < len(dataset):
        return Subset(dataset, range(spec.size))
    return dataset


DATASETS: dict[str, DatasetFactory] = {
    "toy": _toy,  # procedural two-domain scenes: tests and smoke runs only
    "bags": _frames,  # the synthetic-data engine's bags (synthetic and real-like scene families)
    "folder": _frames,
    "nyuv2": _frames,
    "middlebury": _frames,
    "castel": _frames,
}


def build_dataset(spec: DatasetConfig, config: ARCConfig, domain: str) -> Dataset[Tensors]:
    try:
        factory = DATASETS[spec.kind]
    except KeyError:
        known = sorted(DATASETS)
        raise ARCConfigError(f"data.{domain}.kind = {spec.kind!r} is not a known dataset; known: {known}") from None
    return factory(spec, config, domain)


def build_arc_data(config: ARCConfig) -> ARCData:
    """Both training sets from ``config.data``."""
    return ARCData(
        synthetic=build_dataset(config.data.synthetic, config, "synthetic"),
        real=build_dataset(config.data.real, config, "real"),
    )
