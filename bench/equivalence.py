"""Do kner and the PyTorch reference take the same training steps?

Both start from the same weights (a `BertForTokenClassification` drawn by
PyTorch, saved as safetensors, loaded into kner with `kner.checkpoint`), with
dropout off, and train on the same batches with the same recipe
(`kner_side.train_step`, `torch_reference.train_step`). The script prints the
loss of both at every step and, at the end, how far apart the weights are.
If the two steps were the same computation, the losses would agree to float32
round-off for many steps.

`--dataset`:
- `cluener`: CLUENER train, one token per character (`common.cluener_batches`);
- `wnut17`: WNUT-17 train (word-level CoNLL) with Google's English cased
  WordPiece vocab, as `flags/english_cased.cfg` trains (`common.wnut17_batches`):
  kner's head reads the first sub-token of each word (its `label_mask`), the
  reference gets the label there and -100 on the other sub-tokens, [CLS],
  [SEP] and padding, as Hugging Face's `run_ner.py` labels them. Before
  training, every batch's token ids are checked equal to `BertTokenizerFast`'s
  on the same sentences (exit 1 otherwise), and the units are compared with
  `run_ner.py`'s first sub-token of each CoNLL word (they differ where BERT's
  basic tokenizer splits a CoNLL word at punctuation, `U.S.`: kner labels
  each part; reported, not an error).

    PYTHONPATH=. .venv/bin/python bench/equivalence.py --steps=30   # -> bench/results/equivalence.json#cluener
    PYTHONPATH=. .venv/bin/python bench/equivalence.py --dataset=wnut17 --steps=30   # -> #wnut17
"""

from __future__ import annotations

import sys
import tempfile

import numpy as np
from absl import app, flags
from common import (
    ENGLISH_CASED_VOCAB,
    JSON_HELP,
    bert_config,
    cluener_batches,
    machine,
    print_table,
    result_file,
    set_threads,
    wnut17_batches,
    write_json,
)

FLAGS = flags.FLAGS
flags.DEFINE_enum("dataset", "cluener", ["cluener", "wnut17"], "The batches: CLUENER characters or WNUT-17 WordPiece.")
flags.DEFINE_string("size", "2L/128", "Model shape.")
flags.DEFINE_integer("steps", 30, "Training steps.")
flags.DEFINE_float("learning_rate", 1e-3, "Peak learning rate (head: 5x).")
flags.DEFINE_string("json", None, JSON_HELP + "bench/results/equivalence.json#DATASET.")


def dataset(name: str, steps: int) -> tuple[list[dict], object, int]:
    """The batches, their `LabelVocab` and the vocab size of `--dataset`."""
    import kner_side

    if name == "cluener":
        return cluener_batches(32, steps), kner_side.cluener_labels(), 21128
    batches, labels = wnut17_batches(32, steps)
    different, units = check_tokens(batches)
    if different:
        sys.exit(f"token ids differ from BertTokenizerFast's in {different} sentences")
    print(f"token ids equal BertTokenizerFast's on all {sum(len(b['text']) for b in batches)} sentences; {units}")
    return batches, labels, len(ENGLISH_CASED_VOCAB.read_text(encoding="utf-8").splitlines())


def check_tokens(batches: list[dict]) -> tuple[int, str]:
    """How many sentences' token ids differ from `BertTokenizerFast`'s (cased
    vocab, `max_input_chars_per_word` 200 as Google's), and how kner's units
    compare with `run_ner.py`'s first sub-token of each CoNLL word (words
    split at spaces: the sentence text joins them with one)."""
    from transformers import BertTokenizerFast

    from kner.data.wordpiece import MAX_INPUT_CHARS_PER_WORD

    # transformers 5.x: BertTokenizerFast(vocab_file=...) ignores the file (a 5-token vocab); vocab= reads it.
    hf = BertTokenizerFast(vocab=str(ENGLISH_CASED_VOCAB), do_lower_case=False)
    hf.backend_tokenizer.model.max_input_chars_per_word = MAX_INPUT_CHARS_PER_WORD
    different = extra = fewer = total = 0
    for batch in batches:
        texts = list(batch["text"])
        encoded = hf([text.split(" ") for text in texts], is_split_into_words=True)
        for row, text in enumerate(texts):
            kner_ids = batch["token_ids"][row][batch["padding_mask"][row]].tolist()
            hf_ids = encoded["input_ids"][row]
            if kner_ids != hf_ids[: len(kner_ids) - 1] + hf_ids[-1:]:  # kner truncates to 126 sub-tokens
                different += 1
                print(f"differs: {text!r}\n  kner {kner_ids}\n  hf   {hf_ids}", file=sys.stderr)
                continue
            words = encoded.word_ids(row)
            first = [w is not None and (i == 0 or words[i - 1] != w) for i, w in enumerate(words)]
            first = np.array(first[: len(kner_ids) - 1] + [False])
            units = batch["label_mask"][row][: len(first)]
            extra += int((units & ~first).sum())
            fewer += int((first & ~units).sum())
            total += int(first.sum())
    units = f"kner labels {extra} sub-tokens more and {fewer} fewer than run_ner.py's {total} first sub-tokens of words"
    return different, units


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
    batches, labels, vocab_size = dataset(FLAGS.dataset, FLAGS.steps)
    config = {**bert_config(FLAGS.size, vocab_size), "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    torch.manual_seed(0)
    reference = TorchTagger(config, len(labels), "softmax", dropout=0.0)
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
    model = Tagger(backbone, labels, head="softmax", dropout=0.0)
    model(dummy_batch())
    model.classifier.kernel.assign(reference.bert.classifier.weight.detach().numpy().T)
    model.classifier.bias.assign(reference.bert.classifier.bias.detach().numpy())

    units = "label_mask" in batches[0]
    kner_step = kner_side.train_step(model, False, FLAGS.steps, learning_rate=FLAGS.learning_rate, label_mask=units)
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
    print(
        f"\n{FLAGS.dataset}, {FLAGS.size}, {len(labels)} tags, softmax, dropout off, {FLAGS.steps} steps, batch 32; "
        f"load {facts['loadavg_at_start']}"
    )
    table = print_table(["step", "kner loss", "torch loss", "relative difference"], rows)
    largest = max(row[3] for row in rows)
    print(f"largest relative loss difference: {largest:.2e}; largest weight difference at the end: {drift}")
    results = {"machine": facts, "dataset": FLAGS.dataset, "size": FLAGS.size, "rows": rows}
    results["largest_relative_loss_difference"] = largest
    path = result_file("equivalence", FLAGS.dataset) if FLAGS.json is None else FLAGS.json
    write_json(path, {**results, "weight_drift": drift, "table": table})


if __name__ == "__main__":
    app.run(main)
