"""Fine-tuning from each checkpoint family end to end: `python -m kner.train
--init_checkpoint=... --export_dir=...`, then `python -m kner.predict` on the
export. Small random checkpoints in each family's layout (the layouts
themselves are proved in tests/backbones/)."""

import json
import subprocess
import sys

import keras
import keras_hub
import pytest
from train_runs import REPO, child_env, start_train, toy_sentences, write_toy_files

from kner.backbones.encoder import EncoderBackbone
from kner.checkpoint import backbone_from_config, save_google_checkpoint
from kner.data.corpus import read_corpus
from kner.data.tokenizer import build_vocab, save_vocab
from kner.models.artifacts import load_tagger

pytestmark = pytest.mark.slow
SHAPE = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 48,
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
    "max_position_embeddings": 64,
    "type_vocab_size": 2,
    "initializer_range": 0.02,
}
FLAGFILES = {"albert": REPO / "flags" / "albert_tiny.cfg", "electra": REPO / "flags" / "electra_small.cfg"}
CONFIGS = {
    # ALBERT-tiny style (Google layout, ReLU as the Chinese releases), 1 shared group.
    "albert": {**SHAPE, "embedding_size": 16, "hidden_act": "relu", "num_hidden_groups": 1, "inner_group_num": 1},
    "albert_brightmart": {**SHAPE, "embedding_size": 16, "hidden_act": "gelu", "kner_layout": "albert_brightmart"},
    # ELECTRA-small style.
    "electra": {**SHAPE, "embedding_size": 16, "hidden_act": "gelu", "model_type": "electra"},
}


def write_checkpoints(base, texts):
    """One small checkpoint per family, with a vocab of `texts`."""
    vocabulary = build_vocab(texts)
    save_vocab(vocabulary, base / "vocab.txt")
    keras.utils.set_random_seed(3)
    paths = {}
    for name, config in CONFIGS.items():
        backbone = backbone_from_config({**config, "vocab_size": len(vocabulary)})
        save_google_checkpoint(backbone, base / name, vocab_file=base / "vocab.txt")
        paths[name] = base / name
    preset = keras_hub.models.BertBackbone(
        vocabulary_size=len(vocabulary), num_layers=2, num_heads=2, hidden_dim=32, intermediate_dim=48, dropout=0.0
    )
    preset.save_to_preset(str(base / "keras_hub"))
    keras_hub.models.BertTokenizer(vocabulary=str(base / "vocab.txt")).save_to_preset(str(base / "keras_hub"))
    paths["keras_hub"] = base / "keras_hub"
    return paths


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A training (4 steps, then export) from each family's checkpoint, all at once."""
    base = tmp_path_factory.mktemp("families")
    data = write_toy_files(base / "data", train=8, dev=4)
    del data["bert_config"]
    texts = [s.text for s in toy_sentences(8, seed=1) + toy_sentences(4, seed=2)]
    checkpoints = write_checkpoints(base, texts)
    processes = {}
    for name, checkpoint in checkpoints.items():
        # The ALBERT-tiny and ELECTRA-small flagfiles, with the data and checkpoint overridden.
        flags = {"flagfile": FLAGFILES[name]} if name in FLAGFILES else {}
        flags.update(data, init_checkpoint=checkpoint, model_dir=base / name / "run", export_dir=base / name / "export")
        flags.update(batch_size=2, epochs=1, learning_rate=1e-3, max_seq_length=32)
        processes[name] = start_train(base / f"{name}.log", **flags)
    try:
        for name, process in processes.items():
            assert process.wait(timeout=400) == 0, (base / f"{name}.log").read_text()[-3000:]
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
    return base, data


@pytest.mark.parametrize("family", [*CONFIGS, "keras_hub"])
def test_fine_tune_export_and_predict(runs, family):
    base, data = runs
    model, _, _ = load_tagger(base / family / "run")  # the model_dir rebuilds the family
    if family == "keras_hub":
        assert type(model.backbone) is keras_hub.models.BertBackbone
    else:
        assert isinstance(model.backbone, EncoderBackbone) and model.backbone.layout == family
    saved = json.loads((base / family / "run" / "bert_config.json").read_text())
    # A preset's BertBackbone is kept as a Google bert_config.json; the others name their layout.
    assert saved.get("kner_layout") == (None if family == "keras_hub" else family)
    assert f"loaded {family} checkpoint {base / family}" in (base / f"{family}.log").read_text()
    output = base / family / "dev_pred.jsonl"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kner.predict",
            f"--export_dir={base / family / 'export'}",
            f"--input={data['dev_file']}",
        ]
        + [f"--output={output}", "--output_format=jsonl"],
        cwd=REPO,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    texts = [s.text for s in read_corpus(data["dev_file"])]
    assert [line["text"] for line in lines] == texts
    for line in lines:
        for entity in line["entities"]:
            assert line["text"][entity["start"] : entity["end"] + 1] == entity["text"]
