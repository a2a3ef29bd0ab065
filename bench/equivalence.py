"""Do kner and the PyTorch reference take the same training steps?

Both start from the same weights (a `BertForTokenClassification` drawn by
PyTorch, saved as safetensors, loaded into kner with `kner.checkpoint`), with
dropout off, and train on the same CLUENER batches with the same recipe
(`kner_side.train_step`, `torch_reference.train_step`). The script prints the
loss of both at every step and, at the end, how far apart the weights are.
If the two steps were the same computation, the losses would agree to float32
round-off for many steps.

    PYTHONPATH=. .venv/bin/python bench/equivalence.py --steps=30   # -> bench/results/equivalence.json
"""

from __future__ import annotations

import tempfile

import numpy as np
from absl import app, flags
from common import JSON_HELP, NUM_TAGS, bert_config, cluener_batches, machine, print_table, set_threads, write_json

FLAGS = flags.FLAGS
flags.DEFINE_string("size", "2L/128", "Model shape.")
flags.DEFINE_integer("steps", 30, "Training steps.")
flags.DEFINE_float("learning_rate", 1e-3, "Peak learning rate (head: 5x).")
flags.DEFINE_string("json", "bench/results/equivalence.json", JSON_HELP + "this.")


def main(argv) -> None:
    del argv
    import keras_hub
    import kner_side
    import torch
    from torch_reference import TorchTagger, make_optimizer, to_torch, train_step
    from transformers import BertModel

    from kner.checkpoint import load_backbone
    from kner.models.artifacts import dummy_batch
    from kner.models.tagger import Tagger

    set_threads(2)
    facts = machine()
    config = {**bert_config(FLAGS.size, 21128), "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    torch.manual_seed(0)
    reference = TorchTagger(config, NUM_TAGS, "softmax", dropout=0.0)
    with tempfile.TemporaryDirectory() as directory:
        # keras-hub's converter wants the pooler, which the tagger has not.
        encoder = BertModel(reference.bert.config, add_pooling_layer=True)
        missing = encoder.load_state_dict(reference.bert.bert.state_dict(), strict=False).missing_keys
        assert all(key.startswith("pooler.") for key in missing), missing
        # keras-hub computes GELU in its tanh form whatever the name; kner
        # accepts "gelu". (The reference built its activations already.)
        encoder.config.hidden_act = "gelu"
        encoder.save_pretrained(directory)
        loaded = load_backbone(directory)
    # keras-hub's converter keeps its default dropout (0.1); this run has none.
    backbone = keras_hub.models.BertBackbone.from_config({**loaded.get_config(), "dropout": 0.0})
    backbone.set_weights(loaded.get_weights())
    model = Tagger(backbone, kner_side.cluener_labels(), head="softmax", dropout=0.0)
    model(dummy_batch())
    model.classifier.kernel.assign(reference.bert.classifier.weight.detach().numpy().T)
    model.classifier.bias.assign(reference.bert.classifier.bias.detach().numpy())

    batches = cluener_batches(32, FLAGS.steps)
    kner_step = kner_side.train_step(model, False, FLAGS.steps, learning_rate=FLAGS.learning_rate)
    optimizer, scheduler = make_optimizer(
        reference, FLAGS.learning_rate, 5 * FLAGS.learning_rate, 0.01, int(FLAGS.steps * 0.06), FLAGS.steps
    )
    rows = []
    for step, batch in enumerate(batches, 1):
        kner_loss = float(kner_step(kner_side.to_tensorflow(batch))[0])
        torch_loss = train_step(reference, optimizer, scheduler, to_torch(batch))
        rows.append([step, kner_loss, torch_loss, abs(kner_loss - torch_loss) / torch_loss])
        print(rows[-1], flush=True)
    pairs = {
        "token embeddings": (
            backbone.token_embedding.embeddings,
            reference.bert.bert.embeddings.word_embeddings.weight,
        ),
        "classifier kernel": (model.classifier.kernel, reference.bert.classifier.weight.T),
    }
    drift = {name: float(np.abs(k.numpy() - t.detach().numpy()).max()) for name, (k, t) in pairs.items()}
    print(f"\n{FLAGS.size}, softmax, dropout off, {FLAGS.steps} steps, batch 32; load {facts['loadavg_at_start']}")
    table = print_table(["step", "kner loss", "torch loss", "relative difference"], rows)
    largest = max(row[3] for row in rows)
    print(f"largest relative loss difference: {largest:.2e}; largest weight difference at the end: {drift}")
    results = {"machine": facts, "size": FLAGS.size, "rows": rows, "largest_relative_loss_difference": largest}
    write_json(FLAGS.json, {**results, "weight_drift": drift, "table": table})


if __name__ == "__main__":
    app.run(main)
