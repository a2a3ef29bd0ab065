import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from tagger_dirs import TYPES, tiny_config

from kner.checkpoint import backbone_from_config
from kner.data.labels import LabelVocab
from kner.models import artifacts
from kner.models.tagger import Tagger
from kner.training.optimization import FineTuningAdamW, WarmupLinearDecay


def test_warmup_linear_decay_values():
    schedule = WarmupLinearDecay(1e-3, warmup_steps=10, total_steps=110)
    rates = {step: float(schedule(step)) for step in (0, 5, 10, 60, 110, 200)}
    assert rates == pytest.approx({0: 0.0, 5: 5e-4, 10: 1e-3, 60: 5e-4, 110: 0.0, 200: 0.0}, abs=1e-9)


def test_without_warmup_the_first_step_has_the_peak_rate():
    schedule = WarmupLinearDecay(2e-5, warmup_steps=0, total_steps=4)
    assert [float(schedule(step)) for step in range(5)] == pytest.approx([2e-5, 1.5e-5, 1e-5, 5e-6, 0.0])


def one_step(optimizer, variables, gradients):
    optimizer.build(variables)
    optimizer.apply([tf.constant(g, tf.float32) for g in gradients], variables)


def test_weight_decay_spares_layer_norm_and_biases_of_bert_and_scales_with_the_head_rate():
    keras.utils.set_random_seed(0)
    model = Tagger(backbone_from_config(tiny_config(50)), LabelVocab.from_types(TYPES, "bio"), head="crf")
    model(artifacts.dummy_batch())
    spared = set()
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.LayerNormalization):
            spared |= {id(layer.gamma), id(layer.beta)}
        if getattr(layer, "bias", None) is not None:
            spared.add(id(layer.bias))
    variables = model.trainable_variables
    head = {id(v) for layer in model.head_layers() for v in layer.trainable_variables}
    before = [v.numpy() for v in variables]
    # Zero gradients: Adam moves nothing, so every change is weight decay.
    optimizer = FineTuningAdamW(0.1, weight_decay=0.5, clip_norm=0.0, lr_multipliers={i: 3.0 for i in head})
    one_step(optimizer, variables, [np.zeros(v.shape) for v in variables])
    names = set()
    for variable, old in zip(variables, before):
        names.add(variable.name)
        if id(variable) in spared:
            np.testing.assert_array_equal(variable.numpy(), old, err_msg=variable.path)
        else:
            factor = 1 - 0.1 * 0.5 * (3.0 if id(variable) in head else 1.0)
            np.testing.assert_allclose(variable.numpy(), old * factor, rtol=1e-6, err_msg=variable.path)
    assert {"gamma", "beta", "bias", "kernel", "embeddings", "transitions"} <= names
    assert len(spared) > 10


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_lr_multiplier_moves_a_variable_that_many_times_as_far(weight_decay):
    start = np.array([0.5, -1.0, 2.0], np.float32)
    plain, boosted = keras.Variable(start, name="kernel"), keras.Variable(start, name="kernel")
    optimizer = FineTuningAdamW(1e-2, weight_decay=weight_decay, clip_norm=0.0, lr_multipliers={id(boosted): 7.0})
    gradient = np.array([0.3, -0.2, 0.1])
    one_step(optimizer, [plain, boosted], [gradient, gradient])
    moved = plain.numpy() - start
    assert np.all(np.abs(moved) > 1e-3)
    np.testing.assert_allclose(boosted.numpy() - start, 7.0 * moved, rtol=1e-5)


def torch_adamw(start, gradients, lr, weight_decay, eps, beta_1=0.9, beta_2=0.999):
    """PyTorch's `AdamW.step` (and HF's), written out in NumPy."""
    theta, m, v = start.astype(np.float64), 0.0, 0.0
    for t, g in enumerate(gradients, 1):
        theta = theta * (1 - lr * weight_decay)
        m, v = beta_1 * m + (1 - beta_1) * g, beta_2 * v + (1 - beta_2) * g * g
        theta = theta - lr * (m / (1 - beta_1**t)) / (np.sqrt(v / (1 - beta_2**t)) + eps)
    return theta


def test_adam_update_is_pytorchs_with_epsilon_on_the_corrected_scale():
    rng = np.random.default_rng(0)
    start = rng.normal(0, 0.02, 6).astype(np.float32)
    # Gradients of the size clipped BERT gradients have per weight, where
    # epsilon 1e-6 matters: Keras' own Adam is 3-30x off in these steps.
    gradients = [rng.normal(0, 1e-5, 6) for _ in range(5)]
    variable = keras.Variable(start, name="kernel")
    optimizer = FineTuningAdamW(1e-3, weight_decay=0.01, clip_norm=0.0, lr_multipliers={id(variable): 2.0})
    optimizer.build([variable])
    for gradient in gradients:
        optimizer.apply([tf.constant(gradient, tf.float32)], [variable])
    expected = torch_adamw(start, gradients, lr=2e-3, weight_decay=0.01, eps=1e-6)
    np.testing.assert_allclose(variable.numpy() - start, expected - start, rtol=1e-4)
    keras_adam = keras.Variable(start, name="kernel")
    keras.optimizers.AdamW(1e-3 * 2, weight_decay=0.01, epsilon=1e-6).apply(
        [tf.constant(gradients[0], tf.float32)], [keras_adam]
    )
    first = torch_adamw(start, gradients[:1], lr=2e-3, weight_decay=0.01, eps=1e-6)
    assert np.abs(keras_adam.numpy() - start).max() < 0.5 * np.abs(first - start).max()


@pytest.mark.parametrize("clip_norm", [0.0, 0.5])
def test_repeated_rows_of_an_embedding_gradient_count_as_their_sum(clip_norm):
    # Token 0 twice, token 2 once: IndexedSlices as tf.gather's gradient gives them.
    rows = tf.IndexedSlices(tf.constant([[0.3, -0.1], [0.2, 0.4], [-0.5, 0.1]]), tf.constant([0, 0, 2]), [3, 2])
    sparse, dense = (keras.Variable(np.ones((3, 2), np.float32), name="embeddings") for _ in range(2))
    for variable, gradient in ((sparse, rows), (dense, tf.convert_to_tensor(rows))):
        optimizer = FineTuningAdamW(0.1, weight_decay=0.0, clip_norm=clip_norm)
        optimizer.build([variable])
        for _ in range(2):
            optimizer.apply([gradient], [variable])
    np.testing.assert_allclose(sparse.numpy(), dense.numpy(), rtol=1e-6)
    assert sparse.numpy()[1].tolist() == [1.0, 1.0]  # no gradient, no move


def first_moments(optimizer, variables):
    return [optimizer._momentums[optimizer._get_variable_index(v)].numpy() for v in variables]


@pytest.mark.parametrize("clip_norm", [1.0, 10.0, 0.0])
def test_clips_the_global_norm_of_all_gradients(clip_norm):
    variables = [keras.Variable(np.zeros(2, np.float32), name="a"), keras.Variable(np.zeros(1, np.float32), name="b")]
    optimizer = FineTuningAdamW(1e-3, weight_decay=0.0, clip_norm=clip_norm)
    one_step(optimizer, variables, [[3.0, 0.0], [4.0]])  # global norm 5
    scale = 1 / 5 if clip_norm == 1.0 else 1.0  # not [1, 0] and [1]: the norm is global
    m_a, m_b = first_moments(optimizer, variables)  # (1 - beta_1) * clipped gradient
    np.testing.assert_allclose(m_a, 0.1 * scale * np.array([3.0, 0.0]), rtol=1e-6)
    np.testing.assert_allclose(m_b, 0.1 * scale * np.array([4.0]), rtol=1e-6)


def test_under_mixed_bfloat16_gradients_weights_and_adam_state_stay_float32():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        keras.utils.set_random_seed(0)
        model = Tagger(backbone_from_config(tiny_config(50)), LabelVocab.from_types(TYPES, "bio"), head="crf")
        model(artifacts.dummy_batch())
    finally:
        keras.mixed_precision.set_global_policy("float32")
    batch = {**artifacts.dummy_batch(), "label_ids": tf.ones([1, 7], tf.int32)}  # at the 7 positions after [CLS]
    variables = model.trainable_variables
    with tf.GradientTape() as tape:
        loss = model.loss_sum(batch, model(batch, training=True))
    gradients = tape.gradient(loss, variables)
    assert {tf.convert_to_tensor(g).dtype for g in gradients} == {tf.float32}
    before = [v.numpy() for v in variables]
    optimizer = FineTuningAdamW(1e-3)
    optimizer.build(variables)
    optimizer.apply(gradients, variables)
    assert {v.dtype for v in optimizer.variables} <= {"float32", "int64"}
    assert {v.dtype for v in variables} == {"float32"}
    moved = [not np.array_equal(v.numpy(), old) for v, old in zip(variables, before)]
    assert sum(moved) > len(variables) // 2


# google-research/albert optimization.py `create_optimizer`: LAMB's exclusions.
LAMB_EXCLUDED = ["LayerNorm", "layer_norm", "bias"]


def lamb_reference(names, params, grads, slots, rate, weight_decay, clip_norm, beta_1=0.9, beta_2=0.999, eps=1e-6):
    """One step of google-research/albert: `tf.clip_by_global_norm` in
    `create_optimizer`, then `LAMBOptimizer.apply_gradients`
    (`lamb_optimizer.py`), transcribed into NumPy. `slots` maps a name to
    its `(m, v)`, updated in place; returns the new params."""
    global_norm = np.sqrt(sum(np.sum(np.square(g)) for g in grads))
    grads = [g * clip_norm / max(global_norm, clip_norm) for g in grads]
    result = []
    for name, param, grad in zip(names, params, grads):
        m, v = slots.get(name, (np.zeros_like(param), np.zeros_like(param)))
        next_m = beta_1 * m + (1.0 - beta_1) * grad
        next_v = beta_2 * v + (1.0 - beta_2) * np.square(grad)
        update = next_m / (np.sqrt(next_v) + eps)
        excluded = any(re.search(r, name) is not None for r in LAMB_EXCLUDED)
        if weight_decay and not excluded:
            update += weight_decay * param
        ratio = 1.0
        if not excluded:
            w_norm, g_norm = np.linalg.norm(param), np.linalg.norm(update)
            ratio = (w_norm / g_norm if g_norm > 0 else 1.0) if w_norm > 0 else 1.0
        result.append(param - ratio * rate * update)
        slots[name] = (next_m, next_v)
    return result


def dense(gradient, variable) -> np.ndarray:
    """A gradient as a dense array, rows of IndexedSlices added up in NumPy."""
    if isinstance(gradient, tf.IndexedSlices):
        table = np.zeros(variable.shape, np.float64)
        np.add.at(table, gradient.indices.numpy(), gradient.values.numpy())
        return table
    return gradient.numpy().astype(np.float64)


def test_lamb_steps_equal_albert_lamb_optimizer_in_numpy():
    """Two LAMB steps on a tiny ALBERT with SOP (LayerNorms, biases, shared
    layers; a sparse embedding gradient with repeated rows), the gradient
    clipped to norm 1, against the NumPy
    transcription, which picks the excluded variables by their Google names."""
    from kner.backbones.albert import weight_table
    from kner.models.pretraining import MaskedLMModel, dummy_features
    from kner.training.optimization import Lamb

    keras.utils.set_random_seed(4)
    config = {**tiny_config(60, layers=2), "embedding_size": 16, "hidden_act": "relu"}
    model = MaskedLMModel(backbone_from_config(config), sentence_task="sop")
    model(dummy_features())
    names = {id(w.variable): w.name for w in [*weight_table(model.backbone), *model.head_weights()]}
    variables = model.trainable_variables
    assert all(id(v) in names for v in variables)
    features = {
        "token_ids": tf.constant([[2, 7, 7, 9, 3, 7], [2, 11, 7, 3, 0, 0]]),
        "segment_ids": tf.constant([[0, 0, 0, 0, 1, 1], [0, 0, 0, 1, 0, 0]]),
        "padding_mask": tf.constant([[True] * 6, [True] * 4 + [False] * 2]),
        "masked_lm_positions": tf.constant([[1, 2], [2, 0]]),
        "masked_lm_ids": tf.constant([7, 9, 5, 0], shape=(2, 2)),
        "masked_lm_weights": tf.constant([[1.0, 1.0], [1.0, 0.0]]),
        "next_sentence_label": tf.constant([1, 0]),
    }
    rate, weight_decay = 0.01, 0.01
    optimizer = Lamb(rate, weight_decay=weight_decay, clip_norm=1.0)
    optimizer.build(variables)
    slots = {}
    for _ in range(2):
        with tf.GradientTape() as tape:
            sums = model.loss_sums(features, model(features, training=True))
            loss = 100.0 * (sums["masked_lm_loss"] / sums["masked_lm_count"] + sums["sop_loss"] / 2.0)
        gradients = tape.gradient(loss, variables)
        # The segment table's gradient comes as IndexedSlices, a row per token (the word embeddings' is dense:
        # the masked-LM head reads the whole table).
        segments = gradients[[v.path for v in variables].index(model.backbone.segment_embedding.embeddings.path)]
        assert isinstance(segments, tf.IndexedSlices) and len(set(segments.indices.numpy())) < len(segments.indices)
        params = [v.numpy().astype(np.float64) for v in variables]
        grads = [dense(g, v) for g, v in zip(gradients, variables)]
        assert np.sqrt(sum(np.sum(g**2) for g in grads)) > 1.0  # the clip is at work
        expected = lamb_reference([names[id(v)] for v in variables], params, grads, slots, rate, weight_decay, 1.0)
        optimizer.apply(gradients, variables)
        for variable, want in zip(variables, expected):
            np.testing.assert_allclose(variable.numpy(), want, rtol=2e-5, atol=1e-7, err_msg=names[id(variable)])
    excluded = [n for n in names.values() if any(r in n for r in LAMB_EXCLUDED)]
    assert any("LayerNorm" in n for n in excluded) and any(n.endswith("bias") for n in excluded)


def test_lamb_adds_repeated_embedding_rows_before_clipping_and_squaring():
    """A token seen twice gives an IndexedSlices gradient with its row twice:
    kner's LAMB, like its AdamW, sums the rows first (TF1 and PyTorch see
    one dense gradient), so the global norm and v see the summed row; Keras'
    `Lamb` differs."""
    from kner.training.optimization import Lamb

    start = np.arange(1.0, 9.0, dtype=np.float32).reshape(4, 2) / 10
    rows = tf.IndexedSlices(tf.constant([[3.0, -1.0], [3.0, -1.0], [0.5, 2.0]]), tf.constant([1, 1, 3]), (4, 2))
    table = keras.Variable(start, name="embeddings")
    optimizer = Lamb(0.1, weight_decay=0.01, clip_norm=1.0)
    optimizer.build([table])
    optimizer.apply([rows], [table])
    summed = dense(rows, table)
    expected = lamb_reference(
        ["bert/embeddings/word_embeddings"], [start.astype(np.float64)], [summed], {}, 0.1, 0.01, 1.0
    )
    np.testing.assert_allclose(table.numpy(), expected[0], rtol=1e-6)
    keras_table = keras.Variable(start, name="embeddings")
    keras_lamb = keras.optimizers.Lamb(0.1, epsilon=1e-6, global_clipnorm=1.0, weight_decay=0.01)
    keras_lamb.build([keras_table])
    keras_lamb.apply([rows], [keras_table])
    assert np.abs(keras_table.numpy() - expected[0]).max() > 1e-4
