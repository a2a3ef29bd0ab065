"""What the command lines share: flag groups with one name per concept, the
start-up of a training run (`kner.train`, `kner.distill`), and a quiet
TensorFlow.

`python -m kner.X` hides TensorFlow's start-up notices (`failed call to
cuInit` on a machine without a GPU, the oneDNN and CPU-feature notices, ...)
and its C++ INFO lines; `--verbosity=1` (absl's flag, `-v 1`) on the command
line shows them. Everything else on stderr, TensorFlow's real warnings and
errors included, passes through (`quiet_startup`).

Every CLI names a concept the same way: `--input_format` (the data files'
format), `--input_tag_scheme` (the tag scheme of column and CoNLL input files),
`--tag_scheme` (the scheme the model predicts), `--lenient` (repair invalid
tag sequences and text UTF-8 cannot encode instead of failing), `--model_dir`, `--max_seq_length`,
`--batch_size`, `--seed`, `--strategy`, `--mixed_precision`,
`--jit_compile`. A CLI defines the groups it needs before `run_cli`:

```python
from kner import cli

cli.define_data_flags()
cli.define_runtime_flags()
```

The training CLIs add `cli.define_training_flags()` (data, model and
optimizer flags) and build from them with `read_data`, `build_backbone`,
`build_optimizer` and `train_config`.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging as std_logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from absl import flags, logging

from kner.data.corpus import FORMATS, Sentence, read_corpus
from kner.data.tags import INPUT_SCHEMES, SCHEMES
from kner.errors import InputError
from kner.startup_noise import NOISE

if TYPE_CHECKING:
    import keras

    from kner.training.trainer import TrainConfig

FLAGS = flags.FLAGS

INPUT_FORMATS = ("auto", *FORMATS)


def skip_tensorflow_text() -> None:
    """Keeps tensorflow-text out of this process. keras-hub imports it when
    installed (keras-hub depends on it, for its own tokenizers), and loading
    its op libraries adds about 118 MiB of RSS (768 against 650 MiB after
    `import keras_hub`, measured); kner never uses it (its graphs are core
    TensorFlow only). keras-hub guards those imports, so it runs without.
    Called on import, because `kner.train` imports this module before
    keras-hub; a program that imports kner as a library is not affected."""
    if "tensorflow_text" not in sys.modules:
        sys.modules["tensorflow_text"] = None  # makes `import tensorflow_text` raise ImportError


skip_tensorflow_text()
INPUT_TAG_SCHEMES = ("auto", *INPUT_SCHEMES)
# Flags that name files or directories, in every CLI: `save_flagfile` writes
# them as absolute paths.
PATH_FLAGS = frozenset(
    {
        "train_file",
        "dev_file",
        "init_checkpoint",
        "teacher_checkpoint",
        "teacher_dir",
        "bert_config",
        "vocab_file",
        "model_dir",
        "export_dir",
        "input",
        "output",
    }
)


def define_data_flags() -> None:
    """How labelled data files are read: `--input_format`,
    `--input_tag_scheme`, `--lenient`."""
    flags.DEFINE_enum("input_format", "auto", list(INPUT_FORMATS), "Format of the data files (auto: detected).")
    flags.DEFINE_enum(
        "input_tag_scheme",
        "auto",
        list(INPUT_TAG_SCHEMES),
        "Tag scheme of column and CoNLL files (auto: detected; iob1, as CoNLL-2003's original release, must be "
        "given and is read as bio).",
    )
    flags.DEFINE_bool(
        "lenient",
        False,
        "Repair bad input (counted) instead of failing: invalid tag sequences in column files, and text UTF-8 "
        "cannot encode (replaced by U+FFFD, offsets unchanged).",
    )


def define_training_flags() -> None:
    """The data, model and optimizer flags of a training run: `--train_file`,
    `--dev_file`, `--tag_scheme`, `--init_checkpoint`, `--bert_config`,
    `--vocab_file`, `--head`, `--decode`, `--head_size`, `--decode_threshold`,
    `--label_smoothing`, `--dropout`, `--max_seq_length`,
    `--batch_size`, `--eval_batch_size`, `--epochs`, `--learning_rate`,
    `--head_learning_rate`, `--warmup_proportion`, `--weight_decay`,
    `--clip_norm`, `--early_stopping_patience`, `--export_dir`."""
    from kner.models.heads import HEADS, decodings

    flags.DEFINE_string("train_file", None, "Training data: CLUENER JSON lines or a char-per-line column file.")
    flags.DEFINE_string("dev_file", None, "Dev data, evaluated after every epoch (optional).")
    flags.DEFINE_enum("tag_scheme", "bios", list(SCHEMES), "Tags the model predicts.")
    flags.DEFINE_string(
        "init_checkpoint",
        None,
        "Pretrained encoder: a Google TF1 BERT/ALBERT/ELECTRA checkpoint dir or prefix, an HF dir or a keras-hub "
        "preset.",
    )
    flags.DEFINE_string(
        "bert_config",
        None,
        "bert_config.json (or an ALBERT/ELECTRA config) for a from-scratch model (no --init_checkpoint).",
    )
    flags.DEFINE_string("vocab_file", None, "vocab.txt for a from-scratch model; default: built from the train text.")
    flags.DEFINE_enum("head", "crf", list(HEADS), "Output layer (docs/heads.md).")
    by_head = "; ".join(f"{name}: {', '.join(head.decodings)}" for name, head in HEADS.items())
    flags.DEFINE_enum(
        "decode",
        None,
        decodings(),
        "How the head picks entities, saved with the model (default: the head's first). softmax: viterbi (the "
        f"best sequence the tag scheme allows) or argmax (each character on its own). By head: {by_head}.",
    )
    flags.DEFINE_integer(
        "head_size", 64, "global_pointer, efficient_global_pointer: width D of each start and end vector (even)."
    )
    flags.DEFINE_float(
        "decode_threshold",
        0.0,
        "global_pointer, efficient_global_pointer: spans scoring above it are entities (saved with the model).",
    )
    flags.DEFINE_float(
        "label_smoothing",
        0.0,
        "span: label smoothing eps of the start and end cross-entropies (lonePatient's LabelSmoothingCrossEntropy).",
    )
    flags.DEFINE_float("dropout", 0.1, "Dropout before the head.")
    flags.DEFINE_integer("max_seq_length", 128, "Training sentences are truncated to this many tokens (logged).")
    flags.DEFINE_integer("batch_size", 32, "Global training batch, split across replicas.")
    flags.DEFINE_integer("eval_batch_size", 64, "Evaluation batch.")
    flags.DEFINE_integer("epochs", 4, "Training epochs.")
    flags.DEFINE_float("learning_rate", 3e-5, "Peak learning rate of the backbone.")
    flags.DEFINE_float("head_learning_rate", 1e-3, "Peak learning rate of the classifier and CRF.")
    flags.DEFINE_float("warmup_proportion", 0.1, "Fraction of steps with linear warmup.")
    flags.DEFINE_float("weight_decay", 0.01, "AdamW weight decay (not on LayerNorm and biases).")
    flags.DEFINE_float("clip_norm", 1.0, "Global-norm gradient clipping (0: off).")
    flags.DEFINE_integer("early_stopping_patience", 0, "Stop after this many epochs without dev F1 gain (0: never).")
    flags.DEFINE_string("export_dir", None, "Also export a TF Serving SavedModel here at the end.")


LABEL_SUBTOKENS = ("first", "all")


def define_text_flags() -> None:
    """How text becomes tokens and which tokens carry labels, saved in the
    model_dir's settings (prediction and export reuse them):
    `--tokenizer`, `--do_lower_case`, `--label_subtokens`."""
    from kner.data.tokenizer_registry import TOKENIZERS

    flags.DEFINE_enum(
        "tokenizer",
        None,
        list(TOKENIZERS),
        "char: one token per character (Chinese); wordpiece: BERT's WordPiece sub-tokens with character offsets "
        "(English and mixed text). Default: char for a Chinese vocab, else wordpiece.",
    )
    flags.DEFINE_bool(
        "do_lower_case",
        None,
        "Lower-case and strip accents before WordPiece, as the checkpoint was pretrained (default: from the "
        "checkpoint's tokenizer_config.json, folder name or vocab; uncased_* true, cased_* false).",
    )
    flags.DEFINE_enum(
        "label_subtokens",
        "first",
        list(LABEL_SUBTOKENS),
        "Word-level data (CoNLL): first labels the first token of each word and masks the other sub-tokens out "
        "of the loss and the metrics; all labels every sub-token (B- then I-). Character-labelled data labels "
        "every token.",
    )


def build_text(vocabulary: list[str], sentences: Sequence[Sentence], checkpoint: str | None):
    """The tokenizer and labelled units (`kner.data.units`) of a training run
    from the text flags, the vocab and the training data, said in one line:
    `--tokenizer` (default by the vocab), `--do_lower_case` (default by
    `checkpoint`, `kner.backbones.casing`; a mismatch warns), and words as
    units for word-level `sentences` with `--label_subtokens=first`."""
    from kner.backbones.casing import resolve_lowercase
    from kner.data.tokenizer_registry import default_tokenizer, make_tokenizer
    from kner.data.units import TokenUnits, WordUnits

    kind = FLAGS.tokenizer or default_tokenizer(vocabulary)
    if kind == "char":  # Chinese vocabs are uncased; a character model tries lower case only for missing pieces
        lowercase = True if FLAGS.do_lower_case is None else FLAGS.do_lower_case
    else:
        lowercase = resolve_lowercase(FLAGS.do_lower_case, checkpoint, vocabulary)
    words = any(s.words is not None for s in sentences)
    units = WordUnits() if words and FLAGS.label_subtokens == "first" else TokenUnits()
    labelled = {
        ("words", True): "the first token of each word",
        ("tokens", True): "every token of each word",
        ("tokens", False): "every token",
    }[units.name, words]
    casing = "" if kind == "char" else f", do_lower_case={str(lowercase).lower()}"
    print(f"tokenizer {kind} ({len(vocabulary):,} vocab entries{casing}), labels on {labelled}", flush=True)
    return make_tokenizer(kind, vocabulary, lowercase), units


def define_soft_loss_flags(per_model_type: Callable[[str], str] | None = None, temperature: bool = True) -> None:
    """The soft (teacher-student) loss of distillation: `--temperature`,
    `--soft_loss_weight`, `--soft_loss_t_squared`. Two published recipes
    differ in its scale: Hinton et al. (2015) and DistilBERT multiply the
    KL divergence at temperature T by T**2, so that its gradients keep their
    size whatever T (`--soft_loss_t_squared`); TextBrewer's `kd_ce_loss`
    does not (`kner.distill`'s default, `--nosoft_loss_t_squared`).

    With `per_model_type` (`kner.pretrain`: name -> `"distillation: 2"`) the
    flags default to None, each recipe fills in its own default, and the
    help says which. `temperature=False` leaves `--temperature` to a CLI
    that gives it more than one use (`kner.pretrain`: ELECTRA's sampling)."""

    def default(value):
        return value if per_model_type is None else None

    def help_text(text: str, name: str) -> str:
        return text if per_model_type is None else f"{text} Default: per --model_type ({per_model_type(name)})."

    if temperature:
        flags.DEFINE_float(
            "temperature",
            default(8.0),
            help_text("Temperature T of the soft loss (TextBrewer's recipes: 8).", "temperature"),
        )
    flags.DEFINE_float(
        "soft_loss_weight",
        default(1.0),
        help_text("Weight of the soft loss: KL divergence from the teacher's outputs.", "soft_loss_weight"),
    )
    flags.DEFINE_bool(
        "soft_loss_t_squared",
        default(False),
        help_text(
            "Multiply the soft loss by T**2, as Hinton et al. (2015) and DistilBERT do: its gradients then keep their "
            "size whatever T (without it they shrink as 1/T**2, 64x at T=8). Off: TextBrewer's recipe, no factor.",
            "soft_loss_t_squared",
        ),
    )


def define_adversarial_flags() -> None:
    """Adversarial training on the word embeddings (`kner.train`):
    `--adversarial`, `--adversarial_epsilon`, `--adversarial_steps`,
    `--adversarial_alpha` (`kner.training.adversarial`)."""
    from kner.training.adversarial import METHODS  # imports TensorFlow: only kner.train pays for it

    flags.DEFINE_enum(
        "adversarial",
        "none",
        list(METHODS),
        "Adversarial training on the word embeddings: fgm (one more forward-backward pass a step) or pgd "
        "(--adversarial_steps more).",
    )
    flags.DEFINE_float("adversarial_epsilon", 1.0, "Norm of the FGM perturbation; radius of the PGD ball.")
    flags.DEFINE_integer("adversarial_steps", 3, "PGD: perturbation steps (K).", lower_bound=1)
    flags.DEFINE_float("adversarial_alpha", 0.3, "PGD: length of each step.")
    for name in ("adversarial_epsilon", "adversarial_alpha"):
        flags.register_validator(name, lambda value: value > 0, message=f"--{name} must be > 0")


def build_adversary(model: keras.Model):
    """The `--adversarial` method on `model`'s word embeddings (None for
    none); says what it does."""
    from kner.training.adversarial import build_adversary as build

    adversary = build(
        FLAGS.adversarial,
        model,
        epsilon=FLAGS.adversarial_epsilon,
        steps=FLAGS.adversarial_steps,
        alpha=FLAGS.adversarial_alpha,
    )
    if adversary is not None:
        report("adversarial", adversary.describe())
    return adversary


def define_runtime_flags() -> None:
    """Where a run writes and how it runs: `--model_dir`, `--seed`,
    `--strategy`, `--tpu`, `--mixed_precision`, `--jit_compile`,
    `--checkpoint_every`, `--log_every`."""
    from kner.training.distribute import STRATEGIES  # imports TensorFlow: only CLIs that train pay for it

    flags.DEFINE_string("model_dir", None, "Where checkpoints, summaries, weights and reports go.")
    flags.DEFINE_integer("seed", 42, "Seed for initialisation, dropout and batch order.")
    flags.DEFINE_enum("strategy", "default", list(STRATEGIES), "tf.distribute strategy.")
    flags.DEFINE_string("tpu", "", "TPU name or address for --strategy=tpu.")
    flags.DEFINE_enum(
        "mixed_precision",
        None,
        ["mixed_float16", "mixed_bfloat16"],
        "Mixed-precision policy: the encoder computes in 16 bits, the head, losses and optimizer stay float32 "
        "(mixed_bfloat16 pays on CPUs with AVX512-BF16 or AMX).",
    )
    flags.DEFINE_bool(
        "jit_compile",
        False,
        "Compile the training and evaluation steps with XLA (batches padded to multiples of 8 tokens). On CPU it "
        "pays for short sentences and small models only.",
    )
    flags.DEFINE_integer("checkpoint_every", 500, "Steps between checkpoints (also saved at each epoch end).")
    flags.DEFINE_integer("log_every", 20, "Steps between TensorBoard training summaries.")


DOWNLOADS = (
    "expected a directory with bert_config.json, bert_model.ckpt.index/.data-* and vocab.txt "
    "(Google: chinese_L-12_H-768_A-12 from github.com/google-research/bert; HFL: chinese-roberta-wwm-ext or "
    "chinese-bert-wwm-ext from github.com/ymcui/Chinese-BERT-wwm), the same with albert_config.json (ALBERT: "
    "github.com/google-research/albert, github.com/brightmart/albert_zh) or discriminator.json (ELECTRA: "
    "github.com/ymcui/Chinese-ELECTRA), a Hugging Face dir with model.safetensors or a keras-hub preset"
)


def build_backbone(train_texts: list[str], vocabulary: list[str] | None = None):
    """The backbone, its vocab and the config that rebuilds it
    (`kner.backbones.loader.backbone_config`), from the flags. A
    from-scratch backbone takes `--vocab_file`, else `vocabulary`, else a
    vocab built from `train_texts`."""
    from kner.backbones.config_file import read_json
    from kner.backbones.loader import backbone_config, backbone_from_config, describe, load_backbone, locate_checkpoint
    from kner.data.tokenizer import build_vocab, read_vocab

    if FLAGS.init_checkpoint:
        path = Path(FLAGS.init_checkpoint)
        if not path.exists() and not Path(f"{path}.index").exists():
            raise InputError(path, None, f"checkpoint not found: {DOWNLOADS}")
        files = locate_checkpoint(path)
        if files.vocab is None:
            raise InputError(path, None, "no vocab.txt (or vocab_chinese.txt) beside the checkpoint")
        backbone = load_backbone(path, FLAGS.max_seq_length)
        return backbone, read_vocab(files.vocab), backbone_config(backbone)
    if not FLAGS.bert_config:
        raise InputError("--bert_config", None, "give --init_checkpoint or --bert_config")
    given_vocabulary = "the given vocab" if vocabulary else "vocab built from the training text"
    if FLAGS.vocab_file:
        vocabulary = read_vocab(FLAGS.vocab_file)
    vocabulary = vocabulary or build_vocab(train_texts)
    config = {**read_json(FLAGS.bert_config), "vocab_size": len(vocabulary)}
    positions = config.get("max_position_embeddings", FLAGS.max_seq_length)
    if FLAGS.max_seq_length > positions:
        message = f"max_seq_length {FLAGS.max_seq_length} exceeds max_position_embeddings {positions}"
        raise InputError(FLAGS.bert_config, None, message)
    backbone = backbone_from_config(config, where=FLAGS.bert_config)
    source = f"vocab {FLAGS.vocab_file}" if FLAGS.vocab_file else given_vocabulary
    print(
        f"new model from {FLAGS.bert_config}: {describe(backbone)}, randomly initialised; "
        f"{source} ({len(vocabulary)} entries)",
        flush=True,
    )
    return backbone, vocabulary, backbone_config(backbone)


def build_optimizer(model: keras.Model, total_steps: int) -> keras.optimizers.Optimizer:
    """AdamW with warmup and linear decay from the flags; the model's
    `head_layers()` learn at `--head_learning_rate`."""
    from kner.training.optimization import CrossReplicaLossScaleOptimizer, FineTuningAdamW, WarmupLinearDecay

    schedule = WarmupLinearDecay(FLAGS.learning_rate, int(total_steps * FLAGS.warmup_proportion), total_steps)
    factor = FLAGS.head_learning_rate / FLAGS.learning_rate
    head_variables = [v for layer in model.head_layers() for v in layer.trainable_variables]
    optimizer = FineTuningAdamW(
        schedule,
        weight_decay=FLAGS.weight_decay,
        clip_norm=FLAGS.clip_norm,
        lr_multipliers={id(v): factor for v in head_variables},
    )
    if FLAGS.mixed_precision == "mixed_float16":
        optimizer = CrossReplicaLossScaleOptimizer(optimizer)
    optimizer.build(model.trainable_variables)
    return optimizer


HEAD_OPTION_FLAGS = ("head_size", "decode_threshold", "label_smoothing")


def head_flags_ignored(head: str) -> dict[str, str]:
    """{flag: why it has no effect} for the head flags `head` does not take;
    `--tag_scheme` for a head that tags no sequence."""
    from kner.models.heads import head_class

    cls = head_class(head)
    ignored = {name: f"the {head} head does not take it" for name in HEAD_OPTION_FLAGS if name not in cls.options}
    if not cls.tagging:
        ignored["tag_scheme"] = f"the {head} head tags no sequence"
    return ignored


def build_head_from_flags(labels):
    """The `--head` over `labels` with the head's flags (`--decode`, ...);
    a flag value the head cannot take is an InputError naming the flag."""
    from kner.models.heads import build_head, head_class

    options = {name: FLAGS[name].value for name in head_class(FLAGS.head).options}
    try:
        return build_head(FLAGS.head, labels, FLAGS.decode, **options)
    except ValueError as error:
        raise InputError(f"--head={FLAGS.head}", None, str(error)) from None


def read_data(path: str | None) -> list[Sentence] | None:
    """The labelled sentences of `path` (None for no path), read by the data flags."""
    if not path:
        return None
    sentences = read_corpus(path, FLAGS.input_format, FLAGS.input_tag_scheme, strict=not FLAGS.lenient)
    unlabelled = next((s for s in sentences if s.spans is None), None)
    if unlabelled is not None:
        raise InputError(path, unlabelled.line, "no label: training and dev data must be labelled")
    return sentences


def check_spans(
    sentences: list[Sentence] | None, path: str | None, head: str, lenient: bool = False
) -> list[Sentence] | None:
    """Labelled `sentences` as `head` can train on them. A flat head (one
    label per character: `Head.nested` False) keeps the outer span of nested
    ones, with one warning naming the count; crossing and same-extent pairs
    are an InputError naming the first pair and the heads that take them,
    unless `lenient` (`--lenient`), which drops the later span of each such
    pair (one warning with the count). Pair heads take every span."""
    from kner.data.spans import drop_conflicts, find_conflict, flatten_spans
    from kner.models.heads import HEADS, head_class

    if not sentences or head_class(head).nested:
        return sentences
    checked, dropped, nested = [], [], []
    for sentence in sentences:
        conflict = find_conflict(sentence.spans)
        if conflict and not lenient:
            first, second = (f"[{s.start}, {s.end}] {s.type} {sentence.text[s.start : s.end + 1]!r}" for s in conflict)
            how = "cover the same characters" if conflict[0][:2] == conflict[1][:2] else "cross"
            takes = " and ".join(name for name, cls in HEADS.items() if cls.nested)
            problem = f"spans {first} and {second} {how}: the {head} head takes flat entities only"
            message = f"{problem}; the {takes} heads take them (--head), --lenient drops the later span"
            raise InputError(sentence.path or path, sentence.line, message)
        if conflict:
            spans, count_dropped = drop_conflicts(sentence.spans)
            dropped.append((sentence, count_dropped))
            sentence = dataclasses.replace(sentence, spans=spans)
        if flatten_spans(sentence.spans)[1]:
            nested.append(sentence)
        checked.append(sentence)
    if dropped:
        logging.warning(
            "%s: dropped %s crossing another or sharing its extent (first at line %s); the %s head cannot tag them",
            path,
            count(sum(n for _, n in dropped), "span"),
            dropped[0][0].line,
            head,
        )
    if nested:
        logging.warning(
            "%s: %s an entity nested in another (first at line %s); the %s head keeps only the outer one",
            path,
            count(len(nested), "sentence has", "sentences have"),
            nested[0].line,
            head,
        )
    return checked


def train_config() -> TrainConfig:
    """The training loop's settings from the flags."""
    from kner.training.trainer import TrainConfig

    return TrainConfig(
        batch_size=FLAGS.batch_size,
        eval_batch_size=FLAGS.eval_batch_size,
        epochs=FLAGS.epochs,
        max_seq_length=FLAGS.max_seq_length,
        seed=FLAGS.seed,
        checkpoint_every=FLAGS.checkpoint_every,
        log_every=FLAGS.log_every,
        jit_compile=FLAGS.jit_compile,
        early_stopping_patience=FLAGS.early_stopping_patience,
    )


def start_training_run() -> None:
    """What every training CLI does first: quiet TensorFlow, seed Keras
    (`--seed`), set the `--mixed_precision` policy, and warn when
    `--jit_compile` meets a 16-bit policy on a CPU."""
    import keras

    quiet_tensorflow()
    keras.utils.set_random_seed(FLAGS.seed)
    if FLAGS.mixed_precision:
        keras.mixed_precision.set_global_policy(FLAGS.mixed_precision)
    if FLAGS.jit_compile and FLAGS.mixed_precision and FLAGS.strategy != "tpu":
        logging.warning(
            "--jit_compile with --mixed_precision: XLA's CPU backend computes bfloat16 and float16 matmuls in "
            "float32, so on a CPU this is slower than either flag alone (BUILD.md, 'Speed on CPU')"
        )


def quiet_tensorflow() -> None:
    """Hides TensorFlow's own INFO log lines (one per checkpoint save, for
    example) but not kner's, which share absl's handler; `--verbosity=1`
    shows them."""
    import tensorflow as tf

    if flags.FLAGS.verbosity >= 1:
        return
    package = str(Path(tf.__file__).parent) + os.sep
    tf.get_logger().setLevel(std_logging.WARNING)
    logging.get_absl_handler().addFilter(
        lambda record: record.levelno > std_logging.INFO or not record.pathname.startswith(package)
    )


# Runs in a child process, so that it still forwards the last lines when the
# CLI dies (a C++ abort, SIGKILL); ignores SIGINT and SIGTERM, so that Ctrl-C
# in a terminal leaves it forwarding until the CLI itself exits.
_FILTER = """
import re, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
noise = re.compile(sys.argv[1].encode())
for line in sys.stdin.buffer:
    if not noise.search(line):
        sys.stdout.buffer.write(line)
        sys.stdout.buffer.flush()
"""


def verbosity(argv: Sequence[str]) -> int:
    """absl's `--verbosity` (`-v`) as given on the command line `argv`, else 0."""
    for i, arg in enumerate(argv):
        for name in ("--verbosity", "-v"):
            if arg == name and i + 1 < len(argv):
                value = argv[i + 1]
            elif arg.startswith(name + "="):
                value = arg.split("=", 1)[1]
            else:
                continue
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


def quiet_startup(argv: Sequence[str]) -> None:
    """Hides TensorFlow's start-up notices and C++ INFO lines from this
    process's stderr, unless `argv` asks for `--verbosity=1` or more.

    Call it before TensorFlow is imported (`kner/__init__.py` does, for
    `python -m kner.X`). `TF_CPP_MIN_LOG_LEVEL` alone cannot do this: the
    start-up lines are printed before TensorFlow initialises its logging,
    whatever the variable says, and `failed call to cuInit` is at error
    level. So stderr (file descriptor 2) goes through a filter process that
    drops the lines matching `kner.startup_noise.STARTUP_NOISE` and passes everything else;
    `TF_CPP_MIN_LOG_LEVEL` defaults to 1 (no C++ INFO lines after start-up).
    """
    if verbosity(argv) >= 1:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")  # also shows what `notices_hidden` would hold back
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    try:
        stderr = os.dup(2)
        process = subprocess.Popen(
            [sys.executable, "-S", "-c", _FILTER, NOISE.pattern.decode()],
            stdin=subprocess.PIPE,
            stdout=stderr,
            stderr=stderr,
        )
    except OSError:
        return  # no filter: the notices show, nothing is lost
    sys.stderr.flush()
    os.dup2(process.stdin.fileno(), 2)
    process.stdin.close()
    atexit.register(_stop_filter, process, stderr)


def _stop_filter(process: subprocess.Popen, stderr: int) -> None:
    """Gives stderr back and lets the filter forward what is left."""
    sys.stderr.flush()
    os.dup2(stderr, 2)  # closes this process's end of the pipe
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:  # a child process still holds the pipe
        pass


# ---- saying what happened -------------------------------------------------


def count(number: int, singular: str, plural: str | None = None) -> str:
    """`1 sentence`, `2 sentences`, `3 entities` (with `plural` given)."""
    return f"{number:,} {singular if number == 1 else plural or singular + 's'}"


def warn(message: str) -> None:
    """`warning: <message>` on stderr: something the user should know, such
    as a flag that has no effect."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


def warn_ignored_flags(ignored: Mapping[str, str]) -> None:
    """Warns about each flag in `{name: why it has no effect}` that the user
    gave (on the command line or in a flagfile)."""
    for name, reason in ignored.items():
        if flags.FLAGS[name].present:
            warn(f"--{name} is ignored: {reason}")


def report(what: str, where: str | Path, note: str = "") -> None:
    """One line of a run's summary on stdout: `what   where  (note)`."""
    print(f"{what:<14}{where}" + (f"  ({note})" if note else ""), flush=True)


def report_training_run(model_dir: Path, dev_report: dict | None) -> None:
    """The end of a training run (`kner.train`, `kner.distill`): the best
    epoch's dev scores as a table (`Trainer` printed one line per epoch),
    then where the weights, the dev report and the run are."""
    from kner.metrics import format_report
    from kner.models.artifacts import WEIGHTS
    from kner.training.trainer import ERROR_REPORT, EVAL_REPORT

    if dev_report is not None:
        print(f"dev scores of the best epoch ({dev_report['epoch']}):\n{format_report(dev_report)}")
        print(f"best dev micro F1 {dev_report['micro']['f1']:.4f} (epoch {dev_report['epoch']})")
        report("best weights", model_dir / WEIGHTS, f"epoch {dev_report['epoch']}")
        report("dev report", model_dir / EVAL_REPORT)
        if (model_dir / ERROR_REPORT).exists():  # not in runs trained before kner wrote it
            report("error report", model_dir / ERROR_REPORT, "the best dev evaluation; open it in a browser")
    else:
        report("weights", model_dir / WEIGHTS, "after the last step: no --dev_file to pick the best")
    report("model_dir", model_dir, "config, vocab, labels, settings, flags.cfg; checkpoints/ to resume")
    report("TensorBoard", f"tensorboard --logdir {model_dir}")


def save_flagfile(path: str | Path) -> Path:
    """Writes the running CLI's own flags (those its module defines or
    adopts, not absl's or TensorFlow's) as a flagfile, every flag with its
    value, paths (`PATH_FLAGS`) made absolute, so that
    `--flagfile=<path>` repeats the run from any directory."""
    values = flags.FLAGS
    lines = []
    for flag in sorted(values.get_key_flags_for_module(sys.argv[0]), key=lambda f: f.name):
        if flag.value is None:
            continue
        if flag.name in PATH_FLAGS and isinstance(flag.value, str) and flag.value:
            value = os.path.abspath(flag.value)
            lines.append(f"--{flag.name}={value}")
        else:
            lines.append(flag.serialize())
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")
    return path


# ---- stopping on a signal -------------------------------------------------


class StopRequest:
    """Turns SIGINT (Ctrl-C) and SIGTERM into a request that a long loop
    checks between steps, so that it can save its state and stop cleanly
    instead of dying wherever the signal lands. A second signal stops the
    process at once.

    >>> stop = StopRequest.install()
    >>> trainer.fit(..., stop=stop)   # checks `stop.requested`
    >>> sys.exit(stop.exit_code)      # 130 after SIGINT, 143 after SIGTERM
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.event = threading.Event()
        self.signal: int | None = None

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process stopped by a signal: 128 + its number."""
        return 128 + (self.signal or signal.SIGINT)

    @property
    def name(self) -> str:
        return signal.Signals(self.signal).name if self.signal else "a stop request"

    @classmethod
    def install(cls) -> StopRequest:
        request = cls()
        for number in cls.SIGNALS:
            signal.signal(number, request._handle)
        return request

    def _handle(self, number: int, frame) -> None:
        del frame
        if self.requested:  # the second one: stop now
            signal.signal(number, signal.SIG_DFL)
            os.kill(os.getpid(), number)
            return
        self.signal = number
        self.event.set()
        print(
            f"\n{signal.Signals(number).name}: stopping after this step and saving a checkpoint "
            "(again to stop at once)",
            file=sys.stderr,
            flush=True,
        )
