"""Pretraining of a Chinese BERT, ALBERT or ELECTRA, and general
distillation: `python -m kner.pretrain`.

    python -m kner.pretrain --flagfile=flags/pretrain_tiny.cfg
    python -m kner.pretrain --flagfile=flags/pretrain_albert_tiny.cfg
    python -m kner.pretrain --flagfile=flags/pretrain_electra_small.cfg
    python -m kner.pretrain --flagfile=flags/distill_general.cfg --teacher_checkpoint=runs/pretrain_4L \
        --model_dir=runs/distilled --train_steps=3000
    python -m kner.pretrain --corpus_files='legal/*.txt' --init_checkpoint=chinese-roberta-wwm-ext \\
        --model_dir=runs/legal --train_steps=20000 --learning_rate=5e-5

`--model_type` picks the recipe (`kner.models.pretraining.MODEL_TYPES`):

- `bert` (default): masked LM with Chinese whole word masking (jieba words),
  `--nsp` adds next-sentence prediction, AdamW;
- `albert`: Google's `albert_*_zh` (factorised embedding `embedding_size`,
  layers sharing their parameters in `num_hidden_groups` groups): masked LM
  over n-grams of up to `--ngram_mask=3` whole words, sentence-order
  prediction (`--sop`), LAMB (`--optimizer=lamb`), as google-research/albert;
- `electra`: google-research/electra (HFL's Chinese ELECTRA): a generator, a
  masked LM `--generator_hidden_size` (0.25) as wide as the discriminator and
  sharing its embeddings, fills the masked positions (85% `[MASK]`, 15% kept)
  with tokens sampled from its softmax(logits / `--temperature`), and the
  discriminator learns which tokens were replaced; loss = generator masked LM
  + `--disc_weight` (50) x discriminator loss, AdamW
  (`kner.models.pretraining.replaced_token_detection`);
- `distillation`: general distillation, DistilBERT's recipe
  (`kner.models.pretraining.general_distillation`): a student BERT
  (`--bert_config`, or `--init_student_from_teacher_layers=0,2,...` of the
  teacher) learns from a frozen `--teacher_checkpoint` (any BERT-family
  checkpoint kner loads, with its masked-LM head) on the same masked batch:
  `--soft_loss_weight` (5) x KL at `--temperature` (2) x T**2
  (`--soft_loss_t_squared`) over the `--soft_loss_positions` (masked) +
  `--hard_loss_weight` (2) x masked LM on the gold tokens +
  `--cosine_loss_weight` (1) x (1 - cos) of the last hidden states
  (`--hidden_projection=linear` where the widths differ), AdamW. The student
  takes the teacher's vocab; the output is the student.

Where the recipes differ, `--sop`, `--ngram_mask`, `--optimizer`, the
ELECTRA and the distillation flags default to the chosen one's values, and
the log says what was chosen (a flag of another recipe has no effect, and a
warning says so). From scratch
(`--bert_config`: a `bert_config.json`, `albert_config.json` or ELECTRA `discriminator.json`, with
`--vocab_file` or a vocab built from the corpus) or continued from a
Google-format checkpoint of that family (`--init_checkpoint`; its `cls/*`
heads load too when it has them, else they start fresh, and the log says
which). Masks are drawn dynamically in the input pipeline.
`--mixed_precision=mixed_bfloat16` runs the encoder in bfloat16 and the
heads, the losses and the optimizer in float32
(`kner.models.pretraining.masked_lm`); the checkpoint holds float32
variables either way. The result is a checkpoint directory in Google's
layout of the family, `model_dir/{bert_config.json, vocab.txt,
bert_model.ckpt.*}` (BERT) or `model_dir/{albert_config.json, vocab.txt,
model.ckpt-best.*}` (ALBERT), with the encoder and the `cls/*` heads, or
`model_dir/{discriminator.json, generator.json, vocab.txt, electra_model.*}`
(ELECTRA: `electra/*`, `generator/*`, `generator_predictions/*`,
`discriminator_predictions/*`), which
`python -m kner.train --init_checkpoint=MODEL_DIR`, `python -m
kner.checkpoint inspect` and other tools that read Google checkpoints take
as it is. Rerunning the same command resumes from the last checkpoint.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import keras
from absl import app, flags, logging

from kner import cli
from kner.backbones import bert_heads
from kner.backbones.config_file import read_json
from kner.backbones.loader import (
    backbone_config,
    backbone_from_config,
    describe,
    family_of,
    load_backbone,
    locate_checkpoint,
)
from kner.backbones.tf1_checkpoint import read_variables
from kner.data.masking import Masker
from kner.data.pretraining_data import (
    NER_LAYOUTS,
    NSP,
    SOP,
    ExampleConfig,
    PreparedData,
    documents,
    pair_warning,
    prepare_examples,
)
from kner.data.raw_text import LAYOUTS, layout_paths
from kner.data.tokenizer import MASK, CharTokenizer, build_vocab, read_vocab, save_vocab
from kner.errors import InputError, run_cli
from kner.models.pretraining import (
    HIDDEN_PROJECTIONS,
    MODEL_TYPES,
    SOFT_LOSS_POSITIONS,
    DistillationOptions,
    ModelType,
    PretrainingModel,
    PretrainOptions,
    dummy_features,
    load_teacher,
)
from kner.training import distribute
from kner.training.optimization import CrossReplicaLossScaleOptimizer, FineTuningAdamW, Lamb, WarmupLinearDecay
from kner.training.pretrainer import PretrainConfig, Pretrainer
from kner.training.trainer import TrainingStopped

OPTIMIZERS = {"adamw": FineTuningAdamW, "lamb": Lamb}
CORPUS_LAYOUTS = (*LAYOUTS, *NER_LAYOUTS)
DATA_DIR = "pretraining_data"


# The PretrainOptions fields set from flags of the same name, for the model types that read them.
PRETRAIN_OPTIONS = ("generator_hidden_size", "temperature", "disc_weight")
# Flags whose default depends on --model_type; one a model type lacks in its defaults has no effect under it.
# The DistillationOptions fields set from flags of the same name (all but the teacher itself).
DISTILLATION_OPTIONS = tuple(field.name for field in dataclasses.fields(DistillationOptions)[1:])
RECIPE_FLAGS = tuple(
    dict.fromkeys(("sop", "ngram_mask", "optimizer", *PRETRAIN_OPTIONS, "teacher_checkpoint", *DISTILLATION_OPTIONS))
)


def per_model_type(name: str) -> str:
    """`"albert: lamb, bert: adamw"`: a recipe flag's default for each model type that reads it."""
    words = {True: "on", False: "off"}
    values = {t: m.defaults[name] for t, m in MODEL_TYPES.items() if name in m.defaults}
    return ", ".join(f"{t}: {words.get(v, v) if isinstance(v, bool) else v}" for t, v in sorted(values.items()))


FLAGS = flags.FLAGS
flags.DEFINE_enum(
    "model_type",
    "bert",
    list(MODEL_TYPES),
    "; ".join(f"{name}: {model_type.description}" for name, model_type in MODEL_TYPES.items()) + ".",
)
flags.DEFINE_string(
    "corpus_files",
    None,
    "Training text: comma-separated paths or globs; an entry may name its layout, LAYOUT:PATH "
    f"({', '.join(CORPUS_LAYOUTS)}).",
)
flags.DEFINE_enum(
    "corpus_layout",
    "line",
    list(CORPUS_LAYOUTS),
    "Layout of corpus entries without a LAYOUT: prefix: line (a document a line), google (a sentence a line, "
    "blank line between documents), label_tab (label<TAB>text), cluener / column (labelled NER files: their text).",
)
flags.DEFINE_string("dev_corpus_files", None, "Held-out text for evaluation (same syntax as --corpus_files).")
flags.DEFINE_float(
    "dev_fraction",
    0.0,
    "Without --dev_corpus_files: hold out this fraction of the documents (every n-th) for evaluation.",
)
flags.DEFINE_string(
    "bert_config",
    None,
    "bert_config.json (BERT) or albert_config.json (ALBERT) for a from-scratch model (no --init_checkpoint).",
)
flags.DEFINE_string("vocab_file", None, "vocab.txt for a from-scratch model; default: built from the corpus.")
flags.DEFINE_string(
    "init_checkpoint",
    None,
    "Continue pretraining a Google TF1 checkpoint (dir or prefix) of the --model_type's family, or an HF BERT dir.",
)
flags.DEFINE_integer("train_steps", 10000, "Optimizer steps.")
flags.DEFINE_integer("batch_size", 32, "Global training batch, split across replicas.")
flags.DEFINE_integer("eval_batch_size", 64, "Evaluation batch.")
flags.DEFINE_float("learning_rate", 1e-4, "Peak learning rate.")
flags.DEFINE_integer("warmup_steps", 1000, "Steps of linear warmup (then linear decay to 0 at --train_steps).")
flags.DEFINE_enum(
    "optimizer",
    None,
    list(OPTIMIZERS),
    "adamw (PyTorch's AdamW step) or lamb (ALBERT's lamb_optimizer.py: layer-wise trust ratio, no bias "
    f"correction). Default: per --model_type ({per_model_type('optimizer')}).",
)
flags.DEFINE_float("weight_decay", 0.01, "Weight decay of AdamW or LAMB (not on LayerNorm and biases).")
flags.DEFINE_float("clip_norm", 1.0, "Global-norm gradient clipping (0: off).")
flags.DEFINE_integer("max_seq_length", 128, "Tokens per example, [CLS] and [SEP] included.")
flags.DEFINE_integer("max_predictions_per_seq", 20, "At most this many masked positions per example.")
flags.DEFINE_float("masked_lm_prob", 0.15, "Fraction of the tokens to predict.")
flags.DEFINE_bool("whole_word_mask", True, "Mask whole words (jieba segmentation) rather than single characters.")
flags.DEFINE_integer(
    "ngram_mask",
    None,
    "Mask n-grams of up to this many whole words, n drawn with probability proportional to 1/n (ALBERT's "
    f"create_pretraining_data.py); 1 masks single words. Default: per --model_type ({per_model_type('ngram_mask')}).",
    lower_bound=1,
)
flags.DEFINE_bool(
    "nsp", False, "Add next-sentence prediction (Google BERT, Tiny-CN); off as in RoBERTa-wwm. Needs 2+ documents."
)
flags.DEFINE_bool(
    "sop",
    None,
    "Add sentence-order prediction (ALBERT): two consecutive segments of one document, swapped half the time. "
    f"Default: per --model_type ({per_model_type('sop')}).",
)
flags.DEFINE_float(
    "generator_hidden_size",
    None,
    "ELECTRA: the generator's hidden size as a fraction of the discriminator's (heads max(1, hidden/64), FFN 4 x "
    f"hidden, as google-research/electra). Default: per --model_type ({per_model_type('generator_hidden_size')}).",
)
flags.register_validator(
    "generator_hidden_size", lambda value: value is None or value > 0, "--generator_hidden_size must be positive"
)
flags.DEFINE_float(
    "temperature",
    None,
    "Softmax temperature T. ELECTRA: replacements are sampled from the generator's softmax(logits / T); "
    "distillation: of the soft loss, KL between the teacher's and the student's softmax(logits / T). "
    f"Default: per --model_type ({per_model_type('temperature')}).",
    lower_bound=1e-6,
)
flags.DEFINE_float(
    "disc_weight",
    None,
    "ELECTRA: loss = generator masked LM + disc_weight x discriminator loss. "
    f"Default: per --model_type ({per_model_type('disc_weight')}).",
    lower_bound=0.0,
)
flags.DEFINE_string(
    "teacher_checkpoint",
    None,
    "Distillation: the frozen teacher, a checkpoint dir kner loads with its masked-LM head (Google BERT or ALBERT "
    "with cls/predictions, or a Hugging Face BertForMaskedLM dir); the student takes its vocab.",
)
flags.DEFINE_list(
    "init_student_from_teacher_layers",
    None,
    "Distillation: start the student from the teacher's embeddings, pooler, masked-LM head and these layers, "
    "0-based (DistilBERT: 0,2,4,7,9,11 of 12); its shape must equal the teacher's but for the depth. Without "
    "--bert_config the student is the teacher's config with this many layers.",
)
cli.define_soft_loss_flags(per_model_type, temperature=False)
flags.DEFINE_float(
    "hard_loss_weight",
    None,
    "Distillation: weight of the student's masked-LM loss on the gold tokens (DistilBERT's alpha_mlm). "
    f"Default: per --model_type ({per_model_type('hard_loss_weight')}).",
)
flags.DEFINE_float(
    "cosine_loss_weight",
    None,
    "Distillation: weight of 1 - cos of the student's and teacher's last hidden states, per non-padding token "
    f"(DistilBERT's alpha_cos). Default: per --model_type ({per_model_type('cosine_loss_weight')}).",
)
flags.DEFINE_enum(
    "hidden_projection",
    None,
    list(HIDDEN_PROJECTIONS),
    "Distillation: linear projects the student's last hidden states to the teacher's width for the cosine loss "
    "(learned, not saved) when the widths differ; none refuses different widths. "
    f"Default: per --model_type ({per_model_type('hidden_projection')}).",
)
flags.DEFINE_enum(
    "soft_loss_positions",
    None,
    list(SOFT_LOSS_POSITIONS),
    "Distillation: the KL over the masked positions only (DistilBERT's restrict_ce_to_mask; the masked-LM head "
    "projects only those) or over all non-padding positions (DistilBERT's default; max_seq_length / "
    "max_predictions_per_seq times the head's cost). "
    f"Default: per --model_type ({per_model_type('soft_loss_positions')}).",
)
flags.DEFINE_bool("lenient", False, "Replace text that is not valid UTF-8 with U+FFFD (counted) instead of failing.")
flags.DEFINE_integer("eval_every", 1000, "Steps between evaluations on the held-out text (also at the end).")
flags.DEFINE_integer("shuffle_buffer", 10000, "Examples in the shuffle buffer.")
flags.DEFINE_integer("data_seed", 12345, "Seed of the example packing and NSP/SOP pairs (part of the data cache key).")
cli.define_runtime_flags()
flags.adopt_module_key_flags(cli)
flags.mark_flags_as_required(["corpus_files", "model_dir"])


def corpus_sources(spec: str):
    return layout_paths(spec, FLAGS.corpus_layout, CORPUS_LAYOUTS)


def recipe_flag(model_type: ModelType, name: str):
    """The flag's value, or the model type's default when it was left unset."""
    value = FLAGS[name].value
    return model_type.defaults[name] if value is None else value


def warn_unused_recipe_flags(model_type: ModelType) -> None:
    """A warning for each recipe flag given that `model_type` does not read."""
    for name in RECIPE_FLAGS:
        if FLAGS[name].present and name not in model_type.defaults:
            cli.warn(f"--{name} has no effect with --model_type={model_type.name}")


def sentence_task(model_type: ModelType) -> str | None:
    """ "nsp", "sop" or None from `--nsp`, `--sop` and the model type."""
    if FLAGS.nsp and FLAGS.sop:
        raise app.UsageError("--nsp and --sop both given: choose one sentence-pair task")
    task = NSP if FLAGS.nsp else SOP if recipe_flag(model_type, "sop") else None
    if task is not None and task not in model_type.sentence_tasks:
        raise app.UsageError(f"--{task}: --model_type={model_type.name} has no sentence-pair task")
    return task


def check_family(model_type: ModelType, family: str, where: str) -> None:
    """InputError unless `model_type` pretrains checkpoints of `family`,
    naming the model type that does, if any."""
    if family in model_type.families:
        return
    fitting = [name for name, other in MODEL_TYPES.items() if family in other.families]
    remedy = f"give --model_type={fitting[0]}" if fitting else "kner.pretrain does not continue this layout"
    raise InputError(
        where,
        None,
        f"a {family} model, but --model_type={model_type.name} pretrains {' or '.join(model_type.families)} ({remedy})",
    )


def build_backbone(model_type: ModelType, sources, model_dir: Path, teacher: Teacher | None = None):
    """The backbone, the vocab file it uses, and the checkpoint to take the
    heads from (None from scratch). A distillation student takes the
    teacher's vocab, and without --bert_config the teacher's config at the
    depth of --init_student_from_teacher_layers."""
    layers = teacher.options.init_student_from_teacher_layers if teacher else ()
    if FLAGS.init_checkpoint:
        if layers:
            raise app.UsageError("give --init_checkpoint or --init_student_from_teacher_layers, not both")
        files = locate_checkpoint(FLAGS.init_checkpoint)
        check_family(model_type, files.family, FLAGS.init_checkpoint)
        if files.vocab is None:
            raise InputError(FLAGS.init_checkpoint, None, "no vocab.txt beside the checkpoint")
        backbone = load_backbone(FLAGS.init_checkpoint, FLAGS.max_seq_length)
        print(f"continuing {files.weights}: {describe(backbone)}", flush=True)
        return backbone, files.vocab, files.weights if files.format == "google" else None
    if not FLAGS.bert_config and not layers:
        remedy = " or --init_student_from_teacher_layers" if teacher else ""
        raise InputError("--bert_config", None, f"give --init_checkpoint or --bert_config{remedy}")
    if FLAGS.vocab_file or teacher:
        vocab_file = Path(FLAGS.vocab_file or teacher.vocab_file)
        vocabulary = read_vocab(vocab_file)
    else:
        vocabulary = build_vocab(text for document in documents(sources, FLAGS.lenient) for text in document.sentences)
        vocab_file = model_dir / DATA_DIR / "vocab.txt"
        vocab_file.parent.mkdir(parents=True, exist_ok=True)
        save_vocab(vocabulary, vocab_file)
        logging.info("built a vocab of %d tokens from the corpus", len(vocabulary))
    if FLAGS.bert_config:
        where, config = FLAGS.bert_config, {**read_json(FLAGS.bert_config), "vocab_size": len(vocabulary)}
    else:
        where = f"--teacher_checkpoint={FLAGS.teacher_checkpoint}"
        config = {**backbone_config(teacher.model.backbone), "num_hidden_layers": len(layers)}
    backbone = backbone_from_config(config, where)
    check_family(model_type, family_of(backbone), where)
    if FLAGS.max_seq_length > backbone.max_sequence_length:
        message = (
            f"max_seq_length {FLAGS.max_seq_length} exceeds max_position_embeddings {backbone.max_sequence_length}"
        )
        raise InputError(where, None, message)
    source = "the teacher's config" if not FLAGS.bert_config else FLAGS.bert_config
    start = f"the teacher's layers {', '.join(map(str, layers))}" if layers else "randomly initialised"
    print(f"new model from {source}: {describe(backbone)}, {start}", flush=True)
    return backbone, vocab_file, None


@dataclasses.dataclass(frozen=True)
class Teacher:
    """A distillation teacher: the loss options holding it, and its vocab file."""

    options: DistillationOptions
    vocab_file: Path

    @property
    def model(self) -> PretrainingModel:
        return self.options.teacher


def teacher_layers() -> tuple[int, ...]:
    """--init_student_from_teacher_layers as numbers."""
    try:
        return tuple(int(layer) for layer in FLAGS.init_student_from_teacher_layers or ())
    except ValueError:
        raise app.UsageError(
            f"--init_student_from_teacher_layers={','.join(FLAGS.init_student_from_teacher_layers)}: "
            "expected layer numbers like 0,2,4"
        ) from None


def load_distillation_teacher(model_type: ModelType) -> Teacher | None:
    """The teacher and the loss options of a model type that reads
    --teacher_checkpoint (None for the others)."""
    if "teacher_checkpoint" not in model_type.defaults:
        return None
    if not FLAGS.teacher_checkpoint:
        raise app.UsageError(f"--model_type={model_type.name} needs --teacher_checkpoint")
    files = locate_checkpoint(FLAGS.teacher_checkpoint)
    if files.vocab is None:
        raise InputError(FLAGS.teacher_checkpoint, None, "no vocab.txt beside the teacher's checkpoint")
    model = load_teacher(FLAGS.teacher_checkpoint, FLAGS.max_seq_length)
    print(f"teacher {FLAGS.teacher_checkpoint}: {describe(model.backbone)}, with its masked-LM head", flush=True)
    values = {name: recipe_flag(model_type, name) for name in DISTILLATION_OPTIONS}
    values["init_student_from_teacher_layers"] = teacher_layers()
    return Teacher(DistillationOptions(model, **values), files.vocab)


def check_teacher_vocab(teacher: Teacher, vocab_file: Path) -> None:
    """InputError unless the student's vocab is the teacher's."""
    if read_vocab(vocab_file) != read_vocab(teacher.vocab_file):
        message = (
            f"differs from the teacher's vocab ({teacher.vocab_file}): general distillation compares the two "
            "masked-LM distributions token by token, so the student takes the teacher's (drop --vocab_file)"
        )
        raise InputError(vocab_file, None, message)


def load_heads(model: PretrainingModel, prefix: Path | None) -> None:
    """Loads the heads `prefix` has (any of their variables); says which start fresh."""
    names = set(read_variables(prefix)) if prefix is not None else set()
    for head, weights in model.heads().items():
        if any(weight.name in names for weight in weights):
            bert_heads.assign_head_weights(prefix, weights)
            logging.info("loaded the %s head from %s", model.describe_head(head), prefix)
        else:
            where = f"{prefix} has none" if prefix is not None else "no Google checkpoint to load it from"
            logging.info("the %s head starts fresh (%s)", model.describe_head(head), where)


def prepare(sources, tokenizer: CharTokenizer, model_dir: Path, task: str | None):
    """The prepared train and dev example files (cached in model_dir)."""
    config = ExampleConfig(FLAGS.max_seq_length, FLAGS.whole_word_mask, task, FLAGS.data_seed, FLAGS.lenient)
    directory = model_dir / DATA_DIR
    if FLAGS.dev_corpus_files:
        train = prepare_examples(sources, tokenizer, config, directory, "train")
        dev = prepare_examples(corpus_sources(FLAGS.dev_corpus_files), tokenizer, config, directory, "dev")
    elif FLAGS.dev_fraction > 0:
        every = max(2, round(1 / FLAGS.dev_fraction))
        train = prepare_examples(sources, tokenizer, config, directory, "train", lambda i: i % every != 0)
        dev = prepare_examples(sources, tokenizer, config, directory, "dev", lambda i: i % every == 0)
    else:
        return prepare_examples(sources, tokenizer, config, directory, "train"), None
    if dev.examples == 0:
        raise InputError(FLAGS.dev_corpus_files or "--dev_fraction", None, "no held-out examples")
    return train, dev


def describe_data(data: PreparedData) -> str:
    """`1,234 examples (56 documents; SOP 50.1% in order / 49.9% swapped)`."""
    split = f"; {data.sentence_task.upper()} {data.label_split()}" if data.labels else ""
    return f"{data.examples:,} examples ({data.documents:,} documents{split})"


def build_optimizer(model: PretrainingModel, name: str) -> keras.optimizers.Optimizer:
    schedule = WarmupLinearDecay(FLAGS.learning_rate, FLAGS.warmup_steps, FLAGS.train_steps)
    optimizer = OPTIMIZERS[name](schedule, weight_decay=FLAGS.weight_decay, clip_norm=FLAGS.clip_norm)
    if FLAGS.mixed_precision == "mixed_float16":
        optimizer = CrossReplicaLossScaleOptimizer(optimizer)
    optimizer.build(model.trainable_variables)
    return optimizer


def recipe(model: PretrainingModel, masker: Masker, optimizer: str, shares: bool) -> str:
    """`masked LM (n-grams of up to 3 whole words) + SOP, lamb`; with
    `shares`, the masking's `[MASK]` / random / kept split too."""
    unit = "whole words" if FLAGS.whole_word_mask else "characters"
    masking = f"n-grams of up to {masker.ngram} {unit}" if masker.ngram > 1 else unit
    if shares:
        kept = 1 - masker.mask_probability - masker.random_probability
        masking += f"; {masker.mask_probability:.0%} [MASK], {masker.random_probability:.0%} random, {kept:.0%} kept"
    return f"masked LM ({masking}){model.describe()}, {optimizer}"


def main(argv: list[str]) -> None:
    del argv
    cli.start_training_run()
    model_type = MODEL_TYPES[FLAGS.model_type]
    warn_unused_recipe_flags(model_type)
    task, ngram, optimizer_name = (
        sentence_task(model_type),
        recipe_flag(model_type, "ngram_mask"),
        recipe_flag(model_type, "optimizer"),
    )
    model_dir = Path(FLAGS.model_dir)
    sources = corpus_sources(FLAGS.corpus_files)
    strategy = distribute.make_strategy(FLAGS.strategy, FLAGS.tpu)
    logging.info("strategy %s with %d replicas", FLAGS.strategy, strategy.num_replicas_in_sync)
    with strategy.scope():
        teacher = load_distillation_teacher(model_type)
        backbone, vocab_file, heads_from = build_backbone(model_type, sources, model_dir, teacher)
        if teacher is not None:
            check_teacher_vocab(teacher, vocab_file)
        options = PretrainOptions(
            sentence_task=task,
            distillation=teacher.options if teacher else None,
            **{name: recipe_flag(model_type, name) for name in PRETRAIN_OPTIONS if name in model_type.defaults},
        )
        try:
            model = model_type.create(backbone, options)
        except ValueError as error:  # the recipe refuses its options (a generator of no width, layers not copied)
            raise app.UsageError(str(error)) from None
        model(dummy_features())
        load_heads(model, heads_from)
        optimizer = build_optimizer(model, optimizer_name)
    tokenizer = CharTokenizer(vocab_file)
    if MASK not in tokenizer.vocabulary:
        raise InputError(vocab_file, None, f"vocab has no {MASK} token, which masked-LM pretraining needs")
    masker = Masker(
        vocab_size=tokenizer.vocabulary_size,
        mask_id=tokenizer.vocabulary.index(MASK),
        max_seq_length=FLAGS.max_seq_length,
        masked_lm_prob=FLAGS.masked_lm_prob,
        max_predictions_per_seq=FLAGS.max_predictions_per_seq,
        ngram=ngram,
        **model_type.masking,
    )
    description = recipe(model, masker, optimizer_name, shares=bool(model_type.masking))
    print(f"{model_type.name} pretraining: {description}", flush=True)
    train, dev = prepare(sources, tokenizer, model_dir, task)
    if train.examples == 0:
        raise InputError(FLAGS.corpus_files, None, "no training examples (is the corpus empty?)")
    for data, name in ((train, "training"), (dev, "held-out")):
        warning = pair_warning(data, name) if data else None
        if warning:
            cli.warn(warning)
    held_out = f", evaluating on {describe_data(dev)}" if dev else ", no held-out text"
    print(f"pretraining on {describe_data(train)}{held_out}", flush=True)
    if distribute.is_chief(strategy):
        cli.save_flagfile(model_dir / "flags.cfg")
    config = PretrainConfig(
        batch_size=FLAGS.batch_size,
        eval_batch_size=FLAGS.eval_batch_size,
        train_steps=FLAGS.train_steps,
        seed=FLAGS.seed,
        checkpoint_every=FLAGS.checkpoint_every,
        log_every=FLAGS.log_every,
        eval_every=FLAGS.eval_every,
        shuffle_buffer=FLAGS.shuffle_buffer,
        jit_compile=FLAGS.jit_compile,
    )
    trainer = Pretrainer(model, optimizer, strategy, model_dir, config, masker, vocab_file)
    stop = cli.StopRequest.install()
    try:
        report = trainer.pretrain(train.path, dev.path if dev else None, stop=stop)
    except TrainingStopped as stopped:
        print(f"stopped by {stop.name} at step {stopped.step}; checkpoint {stopped.checkpoint}")
        print("run the same command to resume")
        raise SystemExit(stop.exit_code) from None
    if report is not None:
        scores = ", ".join(f"{k} {v:.4f}" for k, v in report.items() if isinstance(v, float))
        print(f"held-out at step {report['step']}: {scores} (model_dir/eval_report.json)")


if __name__ == "__main__":
    run_cli(main)
