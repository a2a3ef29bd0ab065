import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from train_runs import child_env

REPO = Path(__file__).resolve().parents[2]
CHILD = REPO / "tests" / "pretrain_child.py"


@pytest.mark.slow
@pytest.mark.parametrize("model_type", ["bert", "albert", "electra", "distillation"])
def test_mirrored_strategy_pretrains_like_one_device(tmp_path, model_type):
    """4 steps of 8 examples, clip norm 0.5: the default strategy and
    MirroredStrategy on two CPUs (4 + 4 examples) give the same losses and
    weights, for BERT (masked LM + NSP, AdamW), ALBERT (shared layers,
    weights, for BERT (masked LM + NSP, AdamW), ALBERT (shared layers,
    n-gram masking + SOP, LAMB), ELECTRA (a generator sharing the
    embeddings, replacements sampled per example, replaced-token detection)
    and general distillation (a frozen teacher, KL + masked LM + cosine each
    divided by its own global count)."""
    log = tmp_path / "child.log"
    with open(log, "w") as out:
        command = [sys.executable, str(CHILD), str(tmp_path), model_type, "default", "mirrored"]
        code = subprocess.run(command, cwd=REPO, env=child_env(), stdout=out, stderr=subprocess.STDOUT, timeout=400)
    assert code.returncode == 0, log.read_text()[-3000:]
    runs = {}
    for name in ("default", "mirrored"):
        with np.load(tmp_path / f"{model_type}-{name}.npz") as dump:
            runs[name] = dump["losses"], [dump[f"w{i}"] for i in range(len(dump.files) - 1)]
    (losses, weights), (mirrored_losses, mirrored_weights) = runs["default"], runs["mirrored"]
    assert len(losses) == 4 and losses[0] > 0 and losses[-1] != losses[0]
    np.testing.assert_allclose(mirrored_losses, losses, rtol=1e-5)
    for a, b in zip(weights, mirrored_weights):
        np.testing.assert_allclose(b, a, atol=1e-6)
