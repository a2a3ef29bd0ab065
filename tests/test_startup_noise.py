"""kner/startup_noise.py: TensorFlow's start-up notices held back and
dropped, everything else written out."""

import subprocess
import sys

from train_runs import REPO, child_env

NOTICES = (
    "E0000 00:00:1796546238.181448   14097 util.cc:131] oneDNN supports DT_INT32 only on platforms with AVX-512. "
    "Falling back to the default Eigen-based implementation if present.",
    "I0000 00:00:1796546244.041103   14258 port.cc:153] oneDNN custom operations are on.",
    "E0000 00:00:1796546280.499146   14478 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error",
)
REAL = "E0000 00:00:1795996956.231319    9808 op_kernel.cc:1841] OP_REQUIRES failed: out of memory"


def run_block(level: str | None) -> subprocess.CompletedProcess:
    writes = "".join(f"    os.write(2, b{line!r} + b'\\n')\n" for line in (NOTICES[0], REAL, *NOTICES[1:]))
    script = (
        "import os, sys\nfrom kner.startup_noise import notices_hidden\n"
        "with notices_hidden():\n"
        f"{writes}"
        "    with notices_hidden():\n        print('nested', file=sys.stderr)\n"
        "    print('python line', file=sys.stderr)\n"
        "print('after', file=sys.stderr)\n"
    )
    env = {k: v for k, v in child_env().items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    if level is not None:
        env["TF_CPP_MIN_LOG_LEVEL"] = level
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=REPO)


def test_notices_are_dropped_and_everything_else_kept_in_order():
    result = run_block(None)
    assert (result.returncode, result.stderr) == (0, f"{REAL}\nnested\npython line\nafter\n")


def test_tf_cpp_min_log_level_0_shows_them():
    result = run_block("0")
    expected = [NOTICES[0], REAL, *NOTICES[1:], "nested", "python line", "after"]
    assert result.stderr.splitlines() == expected
