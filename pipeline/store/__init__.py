"""The HDF5 feature store: schema, atomic resumable writer, provenance-checking lazy reader."""

from pipeline.store.provenance import SCHEMA_VERSION
from pipeline.store.reader import FeatureSplit
from pipeline.store.text import TextFeatures
from pipeline.store.writer import SplitWriter, write_whole

__all__ = ["SCHEMA_VERSION", "FeatureSplit", "SplitWriter", "TextFeatures", "write_whole"]
