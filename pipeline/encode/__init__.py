"""Stage 1 in the library: plan the cache files of a run and fill them."""

from pipeline.encode.config import EncodeParams, RuntimeParams, encode_params, runtime_params
from pipeline.encode.run import EncodeReport, run_encode

__all__ = ["EncodeParams", "EncodeReport", "RuntimeParams", "encode_params", "run_encode", "runtime_params"]
