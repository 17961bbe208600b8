"""Errors raised by the bag, dataset and data-generation code. Every message names the bad value and the file."""

from __future__ import annotations


class DataError(Exception):
    """Base class for every error of the data layer (bags, datasets, generator)."""


class BagError(DataError):
    """A bag cannot be opened, written or read (missing file, unknown storage, corrupt payload)."""


class BagFormatError(BagError, ValueError):
    """A message in a bag does not have the shape this package documents (docs/bag_format.md)."""


class BagIndexError(DataError):
    """A random-access index cannot be built, loaded or queried."""


class DatasetError(DataError, ValueError):
    """A dataset folder does not follow its documented layout, or a sample option is inconsistent."""


class RealDataMissingError(DataError, FileNotFoundError):
    """Real captured data is not installed (run `make real-data`)."""


class ManifestError(DataError):
    """A generation manifest is corrupt, or a re-run asks for a configuration different from the one on disk."""


class GenerateError(DataError):
    """A generation run cannot proceed (bad option, missing renderer, failed shard)."""
