"""Test helpers for the Google-layout checkpoint families: random weights
under the original names, TF1 checkpoints written the way the original
`run_pretraining.py` writes them (a graph-mode `tf.compat.v1.train.Saver`),
vocab files, and the pieces of a NumPy reference forward pass that follows
the original `modeling.py` files (google-research/bert, google-research/albert,
brightmart/albert_zh, google-research/electra).

The names here are spelled out from those `modeling.py` files, not taken from
kner, so that the tests check kner's tables against the originals.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import tensorflow as tf

REPO = Path(__file__).resolve().parents[2]
REAL_VOCAB = REPO.parent / "shared" / "data" / "vocab" / "bert-base-chinese-vocab.txt"

# Scopes of one encoder block's parts. BERT, ELECTRA and brightmart's ALBERT:
# `transformer_model` in their modeling.py.
BERT_BLOCK = {
    "query": "attention/self/query",
    "key": "attention/self/key",
    "value": "attention/self/value",
    "attention_output": "attention/output/dense",
    "attention_norm": "attention/output/LayerNorm",
    "intermediate": "intermediate/dense",
    "output": "output/dense",
    "output_norm": "output/LayerNorm",
}
# google-research/albert `attention_ffn_block`.
ALBERT_BLOCK = {
    "query": "attention_1/self/query",
    "key": "attention_1/self/key",
    "value": "attention_1/self/value",
    "attention_output": "attention_1/output/dense",
    "attention_norm": "LayerNorm",
    "intermediate": "ffn_1/intermediate/dense",
    "output": "ffn_1/intermediate/output/dense",
    "output_norm": "LayerNorm_1",
}


class RandomWeights:
    """Random weights scaled so that GELU/ReLU, softmax and LayerNorm all
    work away from their linear regimes."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)

    def kernel(self, *shape):
        return self.rng.normal(0, 1 / math.sqrt(shape[0]), shape)

    def vector(self, n, mean=0.0):
        return mean + self.rng.normal(0, 0.5, n)

    def table(self, *shape):
        return self.rng.normal(size=shape)

    def dense(self, name, n_in, n_out, bias=True):
        weights = {f"{name}/kernel": self.kernel(n_in, n_out)}
        if bias:
            weights[f"{name}/bias"] = self.vector(n_out)
        return weights

    def layer_norm(self, name, n):
        return {f"{name}/gamma": self.vector(n, 1.0), f"{name}/beta": self.vector(n)}

    def block(self, prefix, names, hidden, intermediate):
        weights = {}
        for part in ("query", "key", "value", "attention_output"):
            weights.update(self.dense(f"{prefix}/{names[part]}", hidden, hidden))
        weights.update(self.layer_norm(f"{prefix}/{names['attention_norm']}", hidden))
        weights.update(self.dense(f"{prefix}/{names['intermediate']}", hidden, intermediate))
        weights.update(self.dense(f"{prefix}/{names['output']}", intermediate, hidden))
        weights.update(self.layer_norm(f"{prefix}/{names['output_norm']}", hidden))
        return weights


def float32(weights):
    return {name: np.asarray(value, np.float32) for name, value in weights.items()}


def optimizer_slots(weights):
    """Adam slots for every weight, as pre-training checkpoints hold them."""
    slots = {}
    for name, value in weights.items():
        slots[f"{name}/adam_m"] = np.full_like(value, 0.5)
        slots[f"{name}/adam_v"] = np.full_like(value, 0.25)
    return slots


def write_tf1_checkpoint(prefix, variables):
    """A TF1 graph-mode Saver over variables named exactly as given (no
    `checkpoint` state file, as in the ALBERT and ELECTRA releases)."""
    with tf.Graph().as_default():
        for name, value in variables.items():
            tf.compat.v1.get_variable(name, initializer=tf.constant(value))
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            saver.save(session, str(prefix), write_state=False)


def write_vocab(path, size):
    """The real 21,128-entry vocab when present, else a generated one."""
    if size == 21128 and REAL_VOCAB.exists():
        shutil.copyfile(REAL_VOCAB, path)
        return
    special = ["[PAD]", "[unused1]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokens = special + [chr(0x4E00 + n) for n in range(size - len(special))]
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")


# --- NumPy reference pieces ---


def layer_norm(x, gamma, beta):  # contrib layer_norm: epsilon 1e-12
    mean = x.mean(-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + 1e-12) * gamma + beta


def gelu_tanh(x):  # BERT's and ALBERT's modeling.py `gelu`.
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def gelu_erf(x):  # ELECTRA's model/modeling.py `gelu`.
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def relu(x):
    return np.maximum(x, 0)


def attention_adder(mask):
    """`(1 - mask) * -10000`, broadcast over heads and query positions."""
    return (1.0 - mask[:, None, None, :]) * -10000.0


def block_forward(w, prefix, names, x, adder, heads, activation):
    """One post-LayerNorm Transformer block (`transformer_model` /
    `attention_ffn_block`) in float64."""
    batch, length, hidden = x.shape
    size = hidden // heads

    def dense(t, part):
        return t @ w[f"{prefix}/{names[part]}/kernel"] + w[f"{prefix}/{names[part]}/bias"]

    def split(t):
        return t.reshape(batch, length, heads, size).transpose(0, 2, 1, 3)

    def norm(t, part):
        return layer_norm(t, w[f"{prefix}/{names[part]}/gamma"], w[f"{prefix}/{names[part]}/beta"])

    q, k, v = (split(dense(x, part)) for part in ("query", "key", "value"))
    scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(size) + adder
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, length, hidden)
    x = norm(dense(context, "attention_output") + x, "attention_norm")
    return norm(dense(activation(dense(x, "intermediate")), "output") + x, "output_norm")


def as_float64(weights):
    return {name: value.astype(np.float64) for name, value in weights.items()}


def make_inputs(config, length, seed=1):
    """Two rows of random ids and segments; the second half of row 2 is padding."""
    rng = np.random.default_rng(seed)
    token_ids = rng.integers(0, config["vocab_size"], (2, length)).astype("int32")
    segment_ids = rng.integers(0, config["type_vocab_size"], (2, length)).astype("int32")
    mask = np.ones((2, length), "int32")
    mask[1, length // 2 :] = 0
    return token_ids, segment_ids, mask


def run_backbone(backbone, inputs):
    token_ids, segment_ids, mask = inputs
    outputs = backbone({"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": mask})
    return outputs["sequence_output"].numpy(), outputs["pooled_output"].numpy()


def assert_close_on_tokens(got, want, mask, atol=1e-5):
    """Sequence outputs equal to `atol` on the non-padding positions."""
    real = mask.astype(bool)
    np.testing.assert_allclose(got[real], want[real], rtol=0, atol=atol)


def read_checkpoint(prefix):
    """name -> array of every variable in a TF checkpoint."""
    reader = tf.train.load_checkpoint(str(prefix))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}
