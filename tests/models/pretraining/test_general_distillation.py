"""General distillation (`GeneralDistillationModel`): its three losses against
hand computations, padding and unweighted predictions never counting; a
student copied from teacher layers reproducing the teacher's hidden states;
the teacher frozen (no gradient, no dropout, not tracked); widths, layers and
vocab checked; the student's checkpoint; the teacher read from Google's and
Hugging Face's layouts alike."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from tagger_dirs import tiny_config

from kner.backbones import bert
from kner.backbones.hidden_states import hidden_state_model
from kner.backbones.huggingface import HF_TANH_GELU, huggingface_name
from kner.backbones.tf1_checkpoint import read_variables
from kner.backbones.weight_table import arrays
from kner.checkpoint import backbone_from_config, load_backbone
from kner.data.tokenizer import save_vocab
from kner.data.vocab import CLS, MASK, PAD, SEP, UNK
from kner.errors import InputError
from kner.models.pretraining import MODEL_TYPES, DistillationOptions, MaskedLMModel, PretrainOptions
from kner.models.pretraining.general_distillation import GeneralDistillationModel, load_teacher

VOCAB = 53
LENGTH, PREDICTIONS = 12, 4


def random_weights(model: keras.Model, seed: int) -> None:
    """Every weight random (LayerNorm gains too), so that copies are tested."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        variable.assign(rng.normal(0, 0.3, variable.shape).astype("float32"))


def masked_lm_model(layers: int, seed: int, dropout: float = 0.0, width: int = 32) -> MaskedLMModel:
    keras.utils.set_random_seed(seed)
    config = {
        **tiny_config(VOCAB, layers=layers),
        "hidden_size": width,
        "hidden_dropout_prob": dropout,
        "attention_probs_dropout_prob": dropout,
    }
    model = MaskedLMModel(backbone_from_config(config))
    model(features())
    random_weights(model, seed)
    return model


def features(seed: int = 0) -> dict[str, tf.Tensor]:
    """3 examples of 12, 9 and 6 tokens (then padding), 4 predictions each,
    the last of the second and the last two of the third unweighted."""
    rng = np.random.default_rng(seed)
    lengths = np.array([LENGTH, 9, 6])
    padding = np.arange(LENGTH)[None, :] < lengths[:, None]
    positions = np.stack([np.sort(rng.choice(np.arange(1, n - 1), PREDICTIONS, replace=False)) for n in lengths])
    return {
        "token_ids": tf.constant(np.where(padding, rng.integers(5, VOCAB, (3, LENGTH)), 0), tf.int32),
        "segment_ids": tf.zeros([3, LENGTH], tf.int32),
        "padding_mask": tf.constant(padding),
        "masked_lm_positions": tf.constant(positions, tf.int32),
        "masked_lm_ids": tf.constant(rng.integers(5, VOCAB, (3, PREDICTIONS)), tf.int32),
        "masked_lm_weights": tf.constant([[1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 0, 0]], tf.float32),
    }


def vocabulary() -> list[str]:
    """A vocab of VOCAB tokens with the special ones a checkpoint's vocab.txt needs."""
    special = [PAD, UNK, CLS, SEP, MASK]
    return special + [f"t{i}" for i in range(VOCAB - len(special))]


def distiller(student_layers=1, teacher_layers=2, **options) -> GeneralDistillationModel:
    teacher = masked_lm_model(teacher_layers, seed=1)
    width = options.pop("student_width", 32)
    student = backbone_from_config({**tiny_config(VOCAB, layers=student_layers), "hidden_size": width})
    return GeneralDistillationModel(student, DistillationOptions(teacher, **options))


def log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


@pytest.mark.parametrize("positions", ["masked", "all"])
def test_the_three_losses_equal_hand_computations_and_padding_never_counts(positions):
    model = distiller(temperature=2.0, soft_loss_positions=positions)
    batch = features()
    outputs = model(batch)
    sums = model.loss_sums(batch, outputs)
    counts = model.loss_counts(batch)
    weights = batch["masked_lm_weights"].numpy()
    padding = batch["padding_mask"].numpy()
    student, teacher = outputs["masked_lm_logits"].numpy(), outputs["teacher_masked_lm_logits"].numpy()
    # Masked LM on the gold tokens: weighted cross entropy over the predictions.
    gold = batch["masked_lm_ids"].numpy()
    cross_entropy = -np.take_along_axis(log_softmax(student), gold[..., None], -1)[..., 0]
    assert float(sums["masked_lm_loss"]) == pytest.approx((cross_entropy * weights).sum(), rel=1e-5)
    assert float(counts["masked_lm_count"]) == 9 and float(counts["tokens"]) == 27
    # KL x T**2 at the weighted predictions, or at every non-padding token.
    if positions == "masked":
        s, t, where = student, teacher, weights > 0
    else:
        s, t, where = outputs["student_logits"].numpy(), outputs["teacher_logits"].numpy(), padding
        gathered = np.take_along_axis(s, batch["masked_lm_positions"].numpy()[..., None], 1)
        np.testing.assert_allclose(gathered, student, rtol=1e-6)
    kl = (np.exp(log_softmax(t / 2)) * (log_softmax(t / 2) - log_softmax(s / 2))).sum(-1)
    assert float(sums["soft_loss"]) == pytest.approx(4 * kl[where].sum(), rel=1e-4)
    # 1 - cos of the last hidden states over the non-padding tokens.
    hs, ht = outputs["sequence_output"].numpy(), outputs["teacher_sequence_output"].numpy()
    cos = (hs * ht).sum(-1) / np.linalg.norm(hs, axis=-1) / np.linalg.norm(ht, axis=-1)
    assert float(sums["cosine_loss"]) == pytest.approx((1 - cos)[padding].sum(), rel=1e-5)
    # The terms and their counts: DistilBERT's 5 / 2 / 1.
    terms = {t.sum: (t.count, t.weight) for t in model.loss_terms}
    soft_count = "masked_lm_count" if positions == "masked" else "tokens"
    want = {"soft_loss": (soft_count, 5.0), "masked_lm_loss": ("masked_lm_count", 2.0), "cosine_loss": ("tokens", 1.0)}
    assert terms == want

    # Whatever sits in the padding and in unweighted predictions, the sums do not move.
    noisy = dict(batch)
    noisy["token_ids"] = tf.where(batch["padding_mask"], batch["token_ids"], 7)
    ids = batch["masked_lm_ids"].numpy().copy()
    ids[weights == 0] = 3
    noisy["masked_lm_ids"] = tf.constant(ids)
    moved = batch["masked_lm_positions"].numpy().copy()
    moved[2, 2:] = [7, 9]  # unweighted predictions moved into the third example's padding
    noisy["masked_lm_positions"] = tf.constant(moved)
    noisy_sums = model.loss_sums(noisy, model(noisy))
    for name in ("soft_loss", "masked_lm_loss", "masked_lm_correct", "cosine_loss", "tokens"):
        assert float(noisy_sums[name]) == pytest.approx(float(sums[name]), rel=1e-5), name


def test_weights_flags_and_temperature_choose_the_terms():
    model = distiller(soft_loss_weight=1.0, hard_loss_weight=0.0, cosine_loss_weight=0.0, soft_loss_t_squared=False)
    assert [(t.sum, t.weight) for t in model.loss_terms] == [("soft_loss", 1.0)]
    batch = features()
    sums = model.loss_sums(batch, model(batch))
    assert "cosine_loss" not in sums and "masked_lm_loss" in sums  # the report still reads the masked LM
    report = model.report({k: float(v) for k, v in sums.items()})
    assert set(report) >= {"masked_lm_accuracy", "teacher_masked_lm_accuracy", "soft_loss"}
    with pytest.raises(ValueError, match="every loss weight is 0"):
        distiller(soft_loss_weight=0.0, hard_loss_weight=0.0, cosine_loss_weight=0.0)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        distiller(temperature=0.0)


def test_a_student_from_teacher_layers_reproduces_the_teachers_hidden_states_at_step_0():
    teacher = masked_lm_model(layers=4, seed=1)
    batch = features()
    inputs = {k: batch[k] for k in ("token_ids", "segment_ids", "padding_mask")}
    teacher_states = [s.numpy() for s in hidden_state_model(teacher.backbone)(inputs)]
    padding = batch["padding_mask"].numpy()

    # Layers 0, 1, 2 of 4: the embeddings and the three copied layers are the teacher's.
    student = backbone_from_config(tiny_config(VOCAB, layers=3))
    model = GeneralDistillationModel(student, DistillationOptions(teacher, init_student_from_teacher_layers=(0, 1, 2)))
    states = [s.numpy() for s in hidden_state_model(student)(inputs)]
    for i in range(4):
        np.testing.assert_allclose(states[i][padding], teacher_states[i][padding], atol=1e-5, err_msg=f"state {i}")

    # Layers 0 and 3 (DistilBERT's choice keeps the first and the last): the embeddings and layer 0 are the
    # teacher's; the student's second layer is the teacher's layer 3, applied to what the student gives it.
    student = backbone_from_config(tiny_config(VOCAB, layers=2))
    model = GeneralDistillationModel(student, DistillationOptions(teacher, init_student_from_teacher_layers=(0, 3)))
    states = [s.numpy() for s in hidden_state_model(student)(inputs)]
    for i in range(2):
        np.testing.assert_allclose(states[i][padding], teacher_states[i][padding], atol=1e-5, err_msg=f"state {i}")
    layer_3 = teacher.backbone.transformer_layers[3](tf.constant(states[1]), padding_mask=batch["padding_mask"])
    np.testing.assert_allclose(states[2][padding], layer_3.numpy()[padding], atol=1e-5)
    # The masked-LM head and the pooler are the teacher's too: on the teacher's last state, the same logits.
    outputs = model(batch)
    np.testing.assert_allclose(
        model.student.masked_lm_head(teacher_states[-1], batch["masked_lm_positions"]).numpy(),
        outputs["teacher_masked_lm_logits"].numpy(),
        atol=1e-4,
    )
    np.testing.assert_array_equal(student.pooled_dense.kernel.numpy(), teacher.backbone.pooled_dense.kernel.numpy())
    assert model.heads() == {}  # nothing for --init_checkpoint to load: the head came from the teacher


def test_copying_layers_needs_the_teachers_shape_and_layers_in_range():
    with pytest.raises(ValueError, match="the student has hidden_size 16 and the teacher 32"):
        distiller(student_width=16, init_student_from_teacher_layers=(0,), hidden_projection="linear")
    with pytest.raises(ValueError, match="2 teacher layers named for a student of 1 layers"):
        distiller(init_student_from_teacher_layers=(0, 1))
    with pytest.raises(ValueError, match="teacher layer 2 is out of range: the teacher has layers 0-1"):
        distiller(init_student_from_teacher_layers=(2,))


def test_different_widths_need_the_linear_projection():
    with pytest.raises(ValueError, match="16 wide and the teacher's 32: the cosine loss needs a projection"):
        distiller(student_width=16)
    assert distiller(student_width=16, cosine_loss_weight=0.0).projection is None
    model = distiller(student_width=16, hidden_projection="linear")
    batch = features()
    outputs = model(batch)
    assert outputs["sequence_output"].shape == (3, LENGTH, 32)
    assert id(model.projection.kernel) in {id(v) for v in model.trainable_variables}
    assert float(model.loss_sums(batch, outputs)["cosine_loss"]) > 0


def test_the_teacher_gets_no_gradient_runs_without_dropout_and_is_not_tracked():
    teacher = masked_lm_model(layers=2, seed=1, dropout=0.5)
    student = backbone_from_config({**tiny_config(VOCAB), "hidden_dropout_prob": 0.5})
    model = GeneralDistillationModel(student, DistillationOptions(teacher))
    batch = features()
    inference = teacher(batch, training=False)["masked_lm_logits"].numpy()
    first, second = model(batch, training=True), model(batch, training=True)
    np.testing.assert_array_equal(first["teacher_masked_lm_logits"].numpy(), inference)
    np.testing.assert_array_equal(second["teacher_masked_lm_logits"].numpy(), inference)
    assert not np.allclose(first["masked_lm_logits"].numpy(), second["masked_lm_logits"].numpy())  # student dropout
    teacher_ids = {id(v) for v in teacher.weights}
    assert not teacher_ids & {id(v) for v in model.weights}  # neither trained nor in the training checkpoints
    assert not teacher.trainable_weights
    watched = [v.value for v in teacher.weights]  # watched although frozen: what would flow back
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(watched)
        sums = model.loss_sums(batch, model(batch, training=True))
        loss = sum(t.weight * sums[t.sum] for t in model.loss_terms)
    assert all(g is None for g in tape.gradient(loss, watched))
    student_gradients = tape.gradient(loss, model.trainable_variables)
    assert all(g is not None for g in student_gradients)
    before = [v.numpy().copy() for v in teacher.weights]
    keras.optimizers.SGD(1.0).apply(student_gradients, model.trainable_variables)
    for old, variable in zip(before, teacher.weights):
        np.testing.assert_array_equal(old, variable.numpy())


def test_the_vocab_must_be_the_teachers_and_the_model_type_needs_a_teacher():
    teacher = masked_lm_model(layers=1, seed=1)
    with pytest.raises(ValueError, match="the student's vocab has 60 tokens and the teacher's 53"):
        GeneralDistillationModel(backbone_from_config(tiny_config(60)), DistillationOptions(teacher))
    with pytest.raises(ValueError, match="needs a teacher"):
        MODEL_TYPES["distillation"].create(backbone_from_config(tiny_config(VOCAB)), PretrainOptions())


def test_the_checkpoint_is_the_student_with_its_head(tmp_path):
    model = distiller(student_width=16, hidden_projection="linear")
    vocab = tmp_path / "vocab.txt"
    save_vocab(vocabulary(), vocab)
    prefix, contents = model.save_checkpoint(tmp_path / "out", vocab)
    assert contents == "the student: bert layout, bert/* and cls/predictions"
    variables = read_variables(prefix)
    assert variables["bert/embeddings/word_embeddings"][0] == (VOCAB, 16)
    assert "bert/encoder/layer_0/output/dense/kernel" in variables
    assert "bert/encoder/layer_1/output/dense/kernel" not in variables  # the teacher's second layer is not there
    assert not any("projection" in name for name in variables)
    assert variables["cls/predictions/transform/dense/kernel"][0] == (16, 16)
    loaded = load_backbone(tmp_path / "out")
    np.testing.assert_array_equal(loaded.token_embedding.embeddings.numpy(), model.backbone.token_embedding.embeddings)


def write_google_teacher(model: MaskedLMModel, directory, vocabulary):
    vocab = directory / "source_vocab.txt"
    directory.mkdir(parents=True)
    save_vocab(vocabulary, vocab)
    model.save_checkpoint(directory, vocab)
    return directory


def write_huggingface_teacher(model: MaskedLMModel, directory, vocabulary, legacy_names=False):
    """`BertForMaskedLM`'s files: config.json, model.safetensors (`bert.*`,
    `cls.predictions.*`, PyTorch's [out, in] kernels), vocab.txt."""
    import json

    from safetensors.numpy import save_file

    tensors = {}
    for name, value in arrays(bert.weight_table(model.backbone)).items():
        tensors[huggingface_name(name)] = value.T if name.endswith("kernel") else value
    head = arrays(model.head_weights())
    layer_norm = ("gamma", "beta") if legacy_names else ("weight", "bias")
    tensors["cls.predictions.transform.dense.weight"] = head["cls/predictions/transform/dense/kernel"].T
    tensors["cls.predictions.transform.dense.bias"] = head["cls/predictions/transform/dense/bias"]
    tensors[f"cls.predictions.transform.LayerNorm.{layer_norm[0]}"] = head["cls/predictions/transform/LayerNorm/gamma"]
    tensors[f"cls.predictions.transform.LayerNorm.{layer_norm[1]}"] = head["cls/predictions/transform/LayerNorm/beta"]
    tensors["cls.predictions.bias"] = head["cls/predictions/output_bias"]
    tensors["cls.predictions.decoder.weight"] = tensors["bert.embeddings.word_embeddings.weight"]
    directory.mkdir(parents=True)
    save_file(
        {k: np.ascontiguousarray(v, np.float32) for k, v in tensors.items()}, str(directory / "model.safetensors")
    )
    config = {**bert.bert_config_from_backbone(model.backbone), "model_type": "bert", "hidden_act": HF_TANH_GELU}
    (directory / "config.json").write_text(json.dumps({**config, "architectures": ["BertForMaskedLM"]}))
    save_vocab(vocabulary, directory / "vocab.txt")
    return directory


@pytest.mark.parametrize("legacy_names", [False, True])
def test_the_teacher_loads_with_its_masked_lm_head_from_google_and_hugging_face_layouts(tmp_path, legacy_names):
    pytest.importorskip("safetensors")
    source = masked_lm_model(layers=2, seed=4)
    tokens = vocabulary()
    batch = features()
    want = source(batch)["masked_lm_logits"].numpy()
    google = load_teacher(write_google_teacher(source, tmp_path / "google", tokens))
    hf = load_teacher(write_huggingface_teacher(source, tmp_path / "hf", tokens, legacy_names))
    for teacher in (google, hf):
        assert not teacher.trainable
        np.testing.assert_allclose(teacher(batch)["masked_lm_logits"].numpy(), want, atol=1e-4)


def test_a_teacher_without_a_masked_lm_head_is_one_line(tmp_path):
    source = masked_lm_model(layers=1, seed=4)
    vocab = tmp_path / "vocab.txt"
    save_vocab(vocabulary(), vocab)
    bert_only = tmp_path / "bert_only"
    from kner.checkpoint import save_google_checkpoint

    save_google_checkpoint(source.backbone, bert_only, vocab)
    with pytest.raises(InputError, match=r"no masked-LM head \(cls/predictions/\*\) to teach with"):
        load_teacher(bert_only)
