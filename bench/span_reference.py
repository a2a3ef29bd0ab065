"""The PyTorch reference of kner's span head with adversarial training:
lonePatient's `BertSpanForNer` and its `FGM` (and `PGD`), from
lonePatient/BERT-NER-Pytorch (`models/bert_for_ner.py`,
`models/layers/linears.py`, `callback/adversarial.py`, `run_ner_span.py`,
`processors/utils_ner.py` `bert_extract_item`), trained on what a kner run
trained on.

The model (lonePatient's `soft_label=True`, the setting of its CLUENER
results): dropout on the BERT sequence output; start logits from one linear
layer over types + 1 classes (0: no entity starts here); the end layer
(`PoolerEndLogits`: linear to hidden + classes, tanh, LayerNorm, linear to
classes) over [sequence output; start label distribution], the one-hot gold
start label while training, softmax(start logits) otherwise; loss = (start
cross-entropy + end cross-entropy) / 2, each averaged over the positions of
the attention mask ([CLS] and [SEP] included, with label 0, as lonePatient's
features have them), with lonePatient's `LabelSmoothingCrossEntropy` when
`--label_smoothing` > 0. Decoding (`bert_extract_item`) pairs each start of
type t at character i with the first end of type t at j >= i.

FGM as in `run_ner_span.py --do_adv`: backward on the clean loss, add
epsilon * g / ||g|| to the parameter named `word_embeddings`, backward on
the loss there (gradients accumulate), restore, clip, step. PGD as
lonePatient's `PGD` docstring runs it (K steps of alpha, projected into the
epsilon ball, the clean gradients kept aside and the last pass's added).

Everything else is the kner run's: the model_dir's `bert_config.json`
(HF `BertModel`, tanh GELU as keras-hub computes it), `vocab.txt` and
`labels.json` (the entity types in kner's order), and its `flags.cfg`
(epochs, batch size, both learning rates, warmup, weight decay, clipping,
dropout, seed, max_seq_length, label smoothing, `--adversarial*`); the
training texts tokenised by kner's `CharTokenizer` and batched by kner's
`plan_batches`, as kner trains (`bench/torch_reference.py`'s AdamW set-up:
epsilon 1e-6, no decay on LayerNorm and biases, the start and end layers at
the head learning rate, as lonePatient's 1e-3 groups). Dev is scored after
every epoch with `kner.metrics.evaluate`; the best epoch is reported, as
kner does. Dev texts are cut at 510 characters (lonePatient's eval length
512; kner reads longer ones through windows).

    python bench/span_reference.py --model_dir=runs/span_fgm \\
        --train_file=../shared/data/cluener/train.json --dev_file=../shared/data/cluener/dev.json \\
        --json=bench/results/span_reference_seed42.json

`bench/accuracy.py` runs it as the reference side of its `span` rows.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import common  # first: it sets OMP_WAIT_POLICY before torch loads its OpenMP runtime
import numpy as np
import torch
from absl import app, flags
from torch_reference import INITS, hf_config, keras_hub_init, make_optimizer, to_torch
from transformers import BertModel

FLAGS = flags.FLAGS
EVAL_CHARS = 510  # lonePatient's --eval_max_seq_length=512, less [CLS] and [SEP]


def recipe(model_dir: Path) -> dict:
    """The kner run's flags.cfg as {name: value} (numbers as floats)."""
    settings = dict(re.findall(r"^--(\w+)=(.*)$", (model_dir / "flags.cfg").read_text(), re.M))
    return {k: float(v) if re.fullmatch(r"[\d.e+-]+", v) else v for k, v in settings.items()}


def main_spec() -> dict:
    return {
        "model_dir": FLAGS.model_dir,
        "train": FLAGS.train_file,
        "dev": FLAGS.dev_file,
        "lenient": FLAGS.lenient,
        "init": FLAGS.init,
        "seed": FLAGS.seed,
        "adversarial": FLAGS.adversarial,
    }


def train_reference(spec: dict) -> dict:
    """Trains and scores the reference on `spec` (model_dir, train, dev,
    lenient, init, and optionally seed and adversarial to override the
    run's); returns the result row."""
    from kner.data.corpus import read_corpus
    from kner.data.labels import LabelVocab
    from kner.data.pipeline import plan_batches
    from kner.data.spans import Span
    from kner.data.tokenizer import CharTokenizer
    from kner.metrics import evaluate

    model_dir = Path(spec["model_dir"])
    number = recipe(model_dir)
    types = LabelVocab.load(model_dir / "labels.json").types
    tokenizer = CharTokenizer(model_dir / "vocab.txt")
    bert_config = json.loads((model_dir / "bert_config.json").read_text())
    train = read_corpus(spec["train"], strict=not spec["lenient"])
    dev = read_corpus(spec["dev"], strict=not spec["lenient"])
    seed = int(spec.get("seed") if spec.get("seed") is not None else number["seed"])
    batch_size, epochs, max_chars = int(number["batch_size"]), int(number["epochs"]), int(number["max_seq_length"]) - 2
    method = spec.get("adversarial") or number.get("adversarial", "none")

    def batch_of(sentences, limit: int) -> dict:
        texts = [s.text[:limit] for s in sentences]
        batch = common.pad_batch([tokenizer.encode(t) for t in texts], None, tokenizer)
        starts, ends = np.zeros_like(batch["token_ids"]), np.zeros_like(batch["token_ids"])
        for row, sentence in enumerate(sentences):
            for span in sentence.spans:
                if span.end < limit:  # kept whole, as kner's truncation keeps it
                    starts[row, span.start + 1] = ends[row, span.end + 1] = types.index(span.type) + 1
        tensors = to_torch(batch)
        tensors["start_ids"], tensors["end_ids"] = torch.as_tensor(starts).long(), torch.as_tensor(ends).long()
        return tensors

    torch.manual_seed(seed)
    model = SpanTagger(bert_config, len(types), number.get("dropout", 0.1), spec.get("init", "hf"))
    per_epoch = len(plan_batches([min(len(s.text), max_chars) for s in train], batch_size, seed=0))
    optimizer, scheduler = make_optimizer(
        model,
        number["learning_rate"],
        number["head_learning_rate"],
        number["weight_decay"],
        int(per_epoch * epochs * number["warmup_proportion"]),
        per_epoch * epochs,
    )
    adversary = None
    if method == "fgm":
        adversary = FGM(model, "word_embeddings", number.get("adversarial_epsilon", 1.0))
    elif method == "pgd":
        epsilon, alpha = number.get("adversarial_epsilon", 1.0), number.get("adversarial_alpha", 0.3)
        adversary = PGD(model, "word_embeddings", epsilon, alpha, int(number.get("adversarial_steps", 3)))
    smoothing = number.get("label_smoothing", 0.0)
    dev_plan = plan_batches([min(len(s.text), EVAL_CHARS) for s in dev], int(number.get("eval_batch_size", 64)))
    dev_batches = [(rows, batch_of([dev[i] for i in rows], EVAL_CHARS)) for rows in dev_plan]
    scores, train_seconds, examples = [], 0.0, 0
    for epoch in range(epochs):
        started = time.perf_counter()
        lengths = [min(len(s.text), max_chars) for s in train]
        for rows in plan_batches(lengths, batch_size, seed=seed + epoch):
            batch = batch_of([train[i] for i in rows], max_chars)
            model.train()
            model.loss(batch, smoothing).backward()
            if adversary is not None:
                adversary.train(lambda batch=batch: model.loss(batch, smoothing))
            torch.nn.utils.clip_grad_norm_(model.parameters(), number["clip_norm"])
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            examples += len(rows)
        train_seconds += time.perf_counter() - started
        model.eval()
        predicted = [None] * len(dev)
        for rows, batch in dev_batches:
            for row, found in zip(rows, model.decode(batch)):
                predicted[row] = [Span(start, end, types[t - 1]) for t, start, end in found]
        report = evaluate([s.text for s in dev], [s.spans for s in dev], predicted)
        scores.append(report["micro"]["f1"])
        print(f"epoch {epoch + 1}: dev micro F1 {scores[-1]:.4f}", file=sys.stderr, flush=True)
    best = max(range(epochs), key=scores.__getitem__)
    return {
        "side": "torch",
        "head": "span",
        "adversarial": method,
        "seed": seed,
        "f1": scores[best],
        "best_epoch": best + 1,
        "epoch_f1": scores,
        "train_seconds": train_seconds,
        "train_examples_per_second": examples / train_seconds,
    }


# ---- the model and the attacks, as lonePatient writes them -------------------


class PoolerEndLogits(torch.nn.Module):
    """lonePatient's end layer: linear, tanh, LayerNorm, linear."""

    def __init__(self, width: int, classes: int):
        super().__init__()
        self.dense_0 = torch.nn.Linear(width, width)
        self.LayerNorm = torch.nn.LayerNorm(width)
        self.dense_1 = torch.nn.Linear(width, classes)

    def forward(self, hidden: torch.Tensor, start_distribution: torch.Tensor) -> torch.Tensor:
        return self.dense_1(self.LayerNorm(torch.tanh(self.dense_0(torch.cat([hidden, start_distribution], -1)))))


class SpanTagger(torch.nn.Module):
    """`BertSpanForNer` with `soft_label=True` (module docstring); `init`:
    HF's initialiser (`hf`: normal(0, initializer_range), zero biases, as
    `init_weights` draws lonePatient's layers) or keras-hub's (`keras_hub`)."""

    def __init__(self, bert_config: dict, num_types: int, dropout: float = 0.1, init: str = "hf"):
        super().__init__()
        self.classes = num_types + 1
        self.bert = BertModel(hf_config(bert_config, self.classes, dropout), add_pooling_layer=False)
        hidden = bert_config["hidden_size"]
        self.dropout = torch.nn.Dropout(dropout)
        self.start_fc = torch.nn.Linear(hidden, self.classes)
        self.end_fc = PoolerEndLogits(hidden + self.classes, self.classes)
        stddev = bert_config["initializer_range"]
        if init == "keras_hub":
            keras_hub_init(self, stddev)
        elif init == "hf":
            for layer in (self.start_fc, self.end_fc.dense_0, self.end_fc.dense_1):
                torch.nn.init.normal_(layer.weight, std=stddev)
                torch.nn.init.zeros_(layer.bias)
        else:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")

    def head_parameters(self) -> list[torch.nn.Parameter]:
        return [*self.start_fc.parameters(), *self.end_fc.parameters()]

    def logits(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        sequence = self.bert(input_ids=batch["token_ids"], attention_mask=batch["padding_mask"]).last_hidden_state
        sequence = self.dropout(sequence)
        start = self.start_fc(sequence)
        if self.training:
            distribution = torch.nn.functional.one_hot(batch["start_ids"], self.classes).float()
        else:
            distribution = torch.softmax(start, -1)
        return start, self.end_fc(sequence, distribution)

    def loss(self, batch: dict, label_smoothing: float = 0.0) -> torch.Tensor:
        start, end = self.logits(batch)
        active = batch["padding_mask"].bool()
        total = 0.0
        for logits, labels in ((start, batch["start_ids"]), (end, batch["end_ids"])):
            total = total + cross_entropy(logits[active], labels[active], label_smoothing)
        return total / 2

    @torch.no_grad()
    def decode(self, batch: dict) -> list[list[tuple[int, int, int]]]:
        """(type + 1, start, end) character spans of each row: `bert_extract_item`."""
        start, end = self.logits(batch)
        lengths = batch["padding_mask"].sum(1) - 2
        found = []
        for starts, ends, length in zip(start.argmax(-1).numpy(), end.argmax(-1).numpy(), lengths.tolist()):
            starts, ends, spans = starts[1 : length + 1], ends[1 : length + 1], []
            for i, label in enumerate(starts):
                if label == 0:
                    continue
                for j in range(i, length):
                    if ends[j] == label:
                        spans.append((int(label), i, j))
                        break
            found.append(spans)
        return found


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor, smoothing: float) -> torch.Tensor:
    """`CrossEntropyLoss()`, or lonePatient's `LabelSmoothingCrossEntropy(eps)`:
    eps / C * sum(-log p) + (1 - eps) * NLL, averaged."""
    if not smoothing:
        return torch.nn.functional.cross_entropy(logits, labels)
    log_p = torch.log_softmax(logits, -1)
    uniform = -log_p.sum(-1).mean() * smoothing / logits.shape[-1]
    return uniform + (1 - smoothing) * torch.nn.functional.nll_loss(log_p, labels)


class FGM:
    """lonePatient's `FGM`: `attack` adds epsilon * grad / ||grad|| to every
    parameter whose name contains `name`, `restore` puts it back."""

    def __init__(self, model: torch.nn.Module, name: str, epsilon: float = 1.0):
        self.model, self.name, self.epsilon, self.backup = model, name, epsilon, {}

    def parameters(self):
        return [(n, p) for n, p in self.model.named_parameters() if p.requires_grad and self.name in n]

    def attack(self) -> None:
        for name, parameter in self.parameters():
            self.backup[name] = parameter.data.clone()
            norm = torch.norm(parameter.grad)
            if norm != 0 and not torch.isnan(norm):
                parameter.data.add_(self.epsilon * parameter.grad / norm)

    def restore(self) -> None:
        for name, parameter in self.parameters():
            parameter.data = self.backup[name]
        self.backup = {}

    def train(self, loss) -> None:
        """After the clean backward pass: `run_ner_span.py --do_adv`."""
        self.attack()
        loss().backward()
        self.restore()


class PGD:
    """lonePatient's `PGD` and the loop of its docstring."""

    def __init__(self, model: torch.nn.Module, name: str, epsilon: float = 1.0, alpha: float = 0.3, steps: int = 3):
        self.model, self.name, self.epsilon, self.alpha, self.steps = model, name, epsilon, alpha, steps
        self.backup, self.grad_backup = {}, {}

    def parameters(self):
        return [(n, p) for n, p in self.model.named_parameters() if p.requires_grad and self.name in n]

    def attack(self, first: bool) -> None:
        for name, parameter in self.parameters():
            if first:
                self.backup[name] = parameter.data.clone()
            norm = torch.norm(parameter.grad)
            if norm != 0:
                parameter.data.add_(self.alpha * parameter.grad / norm)
                r = parameter.data - self.backup[name]
                if torch.norm(r) > self.epsilon:
                    r = self.epsilon * r / torch.norm(r)
                parameter.data = self.backup[name] + r

    def restore(self) -> None:
        for name, parameter in self.parameters():
            parameter.data = self.backup[name]
        self.backup = {}

    def train(self, loss) -> None:
        self.grad_backup = {
            n: p.grad.clone() for n, p in self.model.named_parameters() if p.requires_grad and p.grad is not None
        }
        for step in range(self.steps):
            self.attack(first=step == 0)
            if step != self.steps - 1:
                self.model.zero_grad()
            else:
                for name, parameter in self.model.named_parameters():
                    if name in self.grad_backup:
                        parameter.grad = self.grad_backup[name]
            loss().backward()
        self.restore()


# ---- command line ------------------------------------------------------------

flags.DEFINE_string("model_dir", None, "A kner.train model_dir (--head=span): config, vocab, labels, flags.cfg.")
flags.DEFINE_string("train_file", None, "The training data of that run.")
flags.DEFINE_string("dev_file", None, "The dev data of that run.")
flags.DEFINE_bool("lenient", False, "Read the data files leniently (as kner's --lenient).")
flags.DEFINE_enum("init", "hf", list(INITS), "Initialiser: HF's (as lonePatient) or keras-hub's (as kner).")
flags.DEFINE_integer("seed", None, "Seed (default: the run's).")
flags.DEFINE_enum("adversarial", None, ["none", "fgm", "pgd"], "Adversarial training (default: the run's).")
flags.DEFINE_string("json", None, "Also write the result here.")
flags.DEFINE_string("child", None, "Internal: train as a child process (JSON spec).")


def main(argv) -> None:
    del argv
    if FLAGS.child:
        common.child_result(train_reference(json.loads(FLAGS.child)))
        return
    for name in ("model_dir", "train_file", "dev_file"):
        if not getattr(FLAGS, name):
            raise app.UsageError(f"--{name} is required")
    facts = common.machine()
    result = train_reference(main_spec())
    print(json.dumps(result), flush=True)
    common.write_json(FLAGS.json, {"machine": facts, "spec": main_spec(), **result})


if __name__ == "__main__":
    app.run(main)
