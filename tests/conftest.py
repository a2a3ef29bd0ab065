import os

# One configuration on every x86 CPU: TensorFlow turns oneDNN on by default
# only with AVX512-VNNI, AVX512-BF16 or AMX, and the int8 export and the fused
# serving kernels are oneDNN's. Set before TensorFlow loads; children inherit
# it; TF_ENABLE_ONEDNN_OPTS=0 in the environment still wins (tests/onednn.py).
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from shared_data import shared_file  # noqa: E402
from tagger_dirs import cached_export, toy_dir  # noqa: E402


@pytest.fixture(scope="session")
def bert_vocab_path() -> Path:
    return shared_file("vocab/bert-base-chinese-vocab.txt")


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """A toy model_dir trained to tag names and places (tests/tagger_dirs.py)."""
    return toy_dir(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def export_dir(model_dir, tmp_path_factory) -> Path:
    """That model exported for TF Serving."""
    return cached_export(tmp_path_factory.getbasetemp(), "toy_export", model_dir)


@pytest.fixture(scope="session")
def in_process(model_dir):
    """A `kner.Predictor` built in-process from that model_dir."""
    from kner.serving.predictor import Predictor

    return Predictor.from_dir(model_dir)


def pytest_xdist_auto_num_workers(config) -> int | None:
    """`-n auto`: a worker per core plus half as many again. Most of the
    suite's time is in child processes (the CLIs, the strategy children) and
    in single-threaded tracing, and a worker waiting on a child or on a
    checkpoint to appear leaves its core idle: with one worker per core the
    cores were busy about three quarters of the time (tests' CPU time
    against the run's wall time on 2 cores). PYTEST_XDIST_AUTO_NUM_WORKERS,
    when set, wins (xdist's own hook reads it)."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return cores + max(1, cores // 2)


def pytest_configure(config) -> None:
    """The order `pytest_collection_modifyitems` gives is the schedule:
    xdist would otherwise hand out its units by their number of tests."""
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config, items) -> None:
    """The docs' runnable pages first (their shared workspace is the longest
    unit of work), then files by their number of slow tests, in-file order
    kept: under `--dist loadscope` (a unit per file, and per class:
    tests/test_docs.py) the long units start at once and the run ends on short
    ones instead of one worker finishing a long unit alone."""
    slow = Counter(item.path for item in items if item.get_closest_marker("slow"))
    items.sort(key=lambda item: (item.path.name != "test_docs.py", -slow[item.path]))
