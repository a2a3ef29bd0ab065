import subprocess
import sys

import pytest
from train_runs import run_child as run


@pytest.mark.slow
def test_cli(model_dir, tmp_path):
    def export(*flags: str) -> subprocess.CompletedProcess:
        return run(sys.executable, "-m", "kner.export", f"--model_dir={model_dir}", f"--export_dir={tmp_path}", *flags)

    result = export("--version=7")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "7" / "saved_model.pb").is_file()
    assert f"exported {tmp_path / '7'}" in result.stdout
    for flag, message in [
        ("--version=7", "version 7 exists already: choose another --version (next free: 8)"),
        ("--version=-3", "error: --version=-3: -3 is not a non-negative integer"),
        ("--window_stride=99", "window_stride must be in [1, 14]"),
        ("--jit_compile --compute_dtype=int8", "jit_compile takes the float32 encoder, not int8"),
        ("--jit_compile --tensor_parallel=2", "under jit_compile XLA runs the encoder as one kernel: choose one"),
        ("--tensor_parallel=3", "3 parts (--tensor_parallel) must divide the"),
        ("--tensor_parallel=0", "error: --tensor_parallel=0: 0 is not a positive integer"),
    ]:
        bad = export(*flag.split())
        assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("error: ")
        assert message in bad.stderr and "Traceback" not in bad.stderr
        assert sorted(path.name for path in tmp_path.iterdir()) == ["7"]  # nothing else written

    parted = export("--version=8", "--tensor_parallel=2")
    assert parted.returncode == 0, parted.stderr[-3000:]
    serve = "in 2 parts: serve with --tensorflow_intra_op_parallelism=1 --tensorflow_inter_op_parallelism=2"
    assert serve in parted.stdout
