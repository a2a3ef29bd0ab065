"""What this machine's TensorFlow runs on oneDNN, for tests whose kernels are
oneDNN's. tests/conftest.py turns oneDNN on for the suite
(`TF_ENABLE_ONEDNN_OPTS=1`) unless the environment says otherwise, so these
skip only where it is turned off or the CPU lacks the instructions."""

from pathlib import Path

import tensorflow as tf
from tensorflow.python.util import _pywrap_utils

from kner.serving.int8 import onednn_enabled

ONEDNN_OFF = not onednn_enabled()
ONEDNN_OFF_REASON = "TensorFlow runs with oneDNN off here (TF_ENABLE_ONEDNN_OPTS=1 turns it on)"

# oneDNN's bfloat16 kernels need AVX512F (or AVX-NE-CONVERT); elsewhere
# Grappler leaves bfloat16 matmuls unfused.
BFLOAT16_UNFUSED = ONEDNN_OFF or not _pywrap_utils.IsDataTypeSupportedByOneDNNOnThisCPU(tf.bfloat16.as_datatype_enum)
BFLOAT16_UNFUSED_REASON = "oneDNN has no bfloat16 kernels on this CPU (no AVX512F): the matmuls run unfused"


def cpu_flags() -> set[str]:
    """The instruction-set flags of /proc/cpuinfo (empty where it is absent)."""
    cpuinfo = Path("/proc/cpuinfo")
    for line in cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []:
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


# With VNNI (`vpdpbusd`) oneDNN's u8 x s8 product is exact; on AVX2 without it,
# each pair of products is summed in int16 (`vpmaddubsw`), saturating.
INT16_PAIR_SUMS = not {"avx512_vnni", "avx_vnni", "amx_int8"} & cpu_flags()
