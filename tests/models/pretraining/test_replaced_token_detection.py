"""ELECTRA's objective (`ReplacedTokenDetectionModel`): the discriminator's
targets, the sampling from the generator's softmax(logits / temperature),
no gradient through the sampling, the loss, the metrics, and float32 heads
under mixed_bfloat16 (the checkpoint layout and the NumPy forward pass:
tests/backbones/test_electra_heads.py)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kner.checkpoint import backbone_from_config
from kner.models.pretraining import ReplacedTokenDetectionModel, dummy_features
from kner.models.pretraining.replaced_token_detection import gumbel_sample

VOCAB = 101
CONFIG = {
    "vocab_size": VOCAB,
    "embedding_size": 16,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
    "max_position_embeddings": 64,
    "type_vocab_size": 2,
    "initializer_range": 0.02,
    "model_type": "electra",
}


def build(**kwargs) -> ReplacedTokenDetectionModel:
    keras.utils.set_random_seed(1)
    model = ReplacedTokenDetectionModel(backbone_from_config(CONFIG), **kwargs)
    model(dummy_features())
    return model


def features(batch=4, length=16, predictions=4, padding=3, seed=0) -> dict[str, tf.Tensor]:
    """Random text; the last `padding` positions of odd rows are padding; the
    last prediction slot of every row is unused (weight 0, position 0)."""
    rng = np.random.default_rng(seed)
    mask = np.ones((batch, length), bool)
    mask[1::2, length - padding :] = False
    positions = np.stack(
        [np.sort(rng.choice(np.arange(1, length - padding - 1), predictions - 1, replace=False)) for _ in range(batch)]
    )
    positions = np.concatenate([positions, np.zeros((batch, 1), int)], axis=1)
    token_ids = rng.integers(5, VOCAB, (batch, length))
    return {
        "token_ids": tf.constant(token_ids, tf.int32),
        "segment_ids": tf.zeros([batch, length], tf.int32),
        "padding_mask": tf.constant(mask),
        "masked_lm_positions": tf.constant(positions, tf.int32),
        "masked_lm_ids": tf.constant(rng.integers(5, VOCAB, (batch, predictions)), tf.int32),
        "masked_lm_weights": tf.constant([[1.0] * (predictions - 1) + [0.0]] * batch, tf.float32),
        "example_seed": tf.constant(np.stack([np.full(batch, 7), np.arange(batch)], 1), tf.int64),
    }


def fix_generator_logits(model: ReplacedTokenDetectionModel, logits: np.ndarray) -> None:
    """Makes the generator's logits `logits` [vocab] at every position: with
    a zero LayerNorm gain the transform outputs zeros, so the logits are the
    output bias."""
    head = model.generator_head
    head._intermediate_layer_norm.gamma.assign(tf.zeros_like(head._intermediate_layer_norm.gamma))
    head._intermediate_layer_norm.beta.assign(tf.zeros_like(head._intermediate_layer_norm.beta))
    head._bias.assign(logits.astype("float32"))


def test_discriminator_reads_the_samples_and_its_targets_are_token_differs_from_original():
    model = build()
    sampled_token = 42
    logits = np.full(VOCAB, -1e4)
    logits[sampled_token] = 0.0  # the generator always samples token 42
    fix_generator_logits(model, logits)
    batch = features()
    ids = batch["masked_lm_ids"].numpy()
    ids[ids == sampled_token] += 1
    ids[:, 0] = sampled_token  # the first prediction of each row samples its original
    batch["masked_lm_ids"] = tf.constant(ids)
    outputs = model(batch)

    positions, weights = batch["masked_lm_positions"].numpy(), batch["masked_lm_weights"].numpy()
    np.testing.assert_array_equal(outputs["sampled_ids"].numpy(), np.full(positions.shape, sampled_token))
    want_labels = np.zeros(batch["token_ids"].shape, np.int32)
    corrupted = batch["token_ids"].numpy().copy()
    for row in range(len(positions)):
        for p, original, weight in zip(positions[row], ids[row], weights[row]):
            if weight:
                corrupted[row, p] = sampled_token
                want_labels[row, p] = int(original != sampled_token)
    np.testing.assert_array_equal(outputs["replaced"].numpy(), want_labels)
    assert want_labels.sum() == 2 * len(positions)  # 3 predictions a row, one sampled its original
    assert want_labels[:, 0].sum() == 0  # position 0 of the unused slot is never touched
    # The discriminator ran on the corrupted text.
    hidden = model.backbone(
        {
            "token_ids": tf.constant(corrupted),
            "segment_ids": batch["segment_ids"],
            "padding_mask": batch["padding_mask"],
        }
    )["sequence_output"]
    np.testing.assert_allclose(outputs["disc_logits"], model.discriminator_head(hidden), atol=1e-6)


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_gumbel_samples_follow_softmax_of_logits_over_temperature(temperature):
    logits = np.full(VOCAB, -30.0)
    logits[[3, 7, 11]] = np.log([0.6, 0.3, 0.1])
    rows, predictions = 3000, 5
    seeds = tf.constant(np.stack([np.full(rows, 9), np.arange(rows)], 1), tf.int64)
    tiled = tf.constant(np.tile(logits, (rows, predictions, 1)), tf.float32)
    samples = gumbel_sample(tiled, seeds, temperature).numpy().ravel()
    want = np.exp(logits / temperature) / np.exp(logits / temperature).sum()
    got = np.bincount(samples, minlength=VOCAB) / samples.size
    np.testing.assert_allclose(got[[3, 7, 11]], want[[3, 7, 11]], atol=0.012)
    assert got.sum() - got[[3, 7, 11]].sum() < 1e-3


def test_samples_depend_on_each_examples_seed_alone():
    """Row i's samples are a function of its own seed: a batch split in two
    (as MirroredStrategy splits it) samples the same tokens."""
    logits = tf.zeros([6, 4, VOCAB])
    seeds = tf.constant(np.stack([np.full(6, 3), np.arange(6)], 1), tf.int64)
    whole = gumbel_sample(logits, seeds).numpy()
    halves = np.concatenate([gumbel_sample(logits[:3], seeds[:3]), gumbel_sample(logits[3:], seeds[3:])])
    np.testing.assert_array_equal(whole, halves)
    other = gumbel_sample(logits, seeds + tf.constant([[0, 100]], tf.int64)).numpy()
    assert (whole != other).mean() > 0.9


def test_model_samples_at_its_temperature():
    model = build(temperature=2.0)
    logits = np.full(VOCAB, -60.0)
    logits[[3, 7]] = np.log([0.8, 0.2])
    fix_generator_logits(model, logits)
    sampled = model(features(batch=300, seed=2))["sampled_ids"].numpy()[:, :3]
    share = (sampled == 3).mean()
    assert share == pytest.approx(np.sqrt(0.8) / (np.sqrt(0.8) + np.sqrt(0.2)), abs=0.04)  # 0.667, not 0.8


def test_no_gradient_through_the_sampling():
    """The discriminator's loss reaches the generator only through the shared
    embeddings; the generator's loss never reaches the discriminator's own
    layers or head."""
    model = build()
    batch = features()
    layers = ("token_embedding", "position_embedding", "segment_embedding", "embeddings_layer_norm")
    shared = {id(v) for layer in layers for v in getattr(model.backbone, layer).weights}
    generator_own = [v for v in [*model.generator.weights, *model.generator_head.weights] if id(v) not in shared]
    discriminator_own = [v for v in [*model.backbone.weights, *model.discriminator_head.weights] if id(v) not in shared]
    with tf.GradientTape(persistent=True) as tape:
        sums = model.loss_sums(batch, model(batch, training=True))
    for_disc = tape.gradient(sums["disc_loss"], generator_own)
    assert generator_own and all(g is None for g in for_disc)
    assert all(g is not None for g in tape.gradient(sums["disc_loss"], discriminator_own))
    for_mlm = tape.gradient(sums["masked_lm_loss"], discriminator_own)
    assert all(g is None for g in for_mlm)
    assert all(g is not None for g in tape.gradient(sums["masked_lm_loss"], generator_own))
    embedding = model.backbone.token_embedding.embeddings
    assert tape.gradient(sums["disc_loss"], embedding) is not None
    assert tape.gradient(sums["masked_lm_loss"], embedding) is not None


def sigmoid_cross_entropy(logits, labels):
    return np.maximum(logits, 0) - logits * labels + np.log1p(np.exp(-np.abs(logits)))


def test_loss_is_generator_masked_lm_plus_disc_weight_times_discriminator_loss_over_non_padding():
    model = build(disc_weight=7.0)
    batch = features(seed=3)
    outputs = model(batch)
    sums, counts = model.loss_sums(batch, outputs), model.loss_counts(batch)
    loss = sum(t.weight * float(sums[t.sum]) / float(counts[t.count]) for t in model.loss_terms)

    shifted = outputs["masked_lm_logits"].numpy().astype(np.float64)
    shifted -= shifted.max(-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    ids, weights = batch["masked_lm_ids"].numpy(), batch["masked_lm_weights"].numpy()
    picked = np.take_along_axis(log_probs, ids[..., None], -1)[..., 0]
    masked_lm = -(picked * weights).sum() / weights.sum()
    tokens = batch["padding_mask"].numpy()
    disc = sigmoid_cross_entropy(outputs["disc_logits"].numpy(), outputs["replaced"].numpy())[tokens].mean()
    assert loss == pytest.approx(masked_lm + 7.0 * disc, rel=1e-5)
    assert [(t.sum, t.count, t.weight) for t in model.loss_terms] == [
        ("masked_lm_loss", "masked_lm_count", 1.0),
        ("disc_loss", "tokens", 7.0),
    ]
    assert float(counts["tokens"]) == tokens.sum() < tokens.size  # padding excluded


def test_report_metrics_from_summed_counts():
    model = build()
    totals = {
        "masked_lm_correct": 3.0,
        "masked_lm_loss": 20.0,
        "masked_lm_count": 10.0,
        "examples": 2.0,
        "disc_loss": 5.0,
        "tokens": 50.0,
        "disc_correct": 45.0,
        "disc_true_positive": 6.0,
        "disc_predicted_positive": 8.0,
        "disc_replaced": 9.0,
    }
    assert model.report(totals) == {
        "masked_lm_accuracy": 0.3,
        "masked_lm_loss": 2.0,
        "disc_loss": 0.1,
        "disc_accuracy": 0.9,
        "disc_precision": 0.75,
        "disc_recall": 6.0 / 9.0,
        "sampled_replacement_rate": 0.9,
        "masked_lm_predictions": 10,
        "examples": 2,
    }
    batch = features(seed=4)
    sums = {k: float(v) for k, v in model.loss_sums(batch, model(batch)).items()}
    replaced = model(batch)["replaced"].numpy()
    assert sums["disc_replaced"] == replaced.sum() <= sums["masked_lm_count"]


def test_mixed_bfloat16_keeps_heads_sampling_and_losses_in_float32():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build()
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert {v.dtype for v in model.variables if v.trainable} == {"float32"}
    assert model.backbone.compute_dtype == model.generator.compute_dtype == "bfloat16"
    batch = features()
    outputs = model(batch, training=True)
    assert outputs["masked_lm_logits"].dtype == outputs["disc_logits"].dtype == tf.float32
    sums = model.loss_sums(batch, outputs)
    assert {value.dtype for value in sums.values()} == {tf.float32}
    with tf.GradientTape() as tape:
        sums = model.loss_sums(batch, model(batch, training=True))
        loss = sums["masked_lm_loss"] / sums["masked_lm_count"] + 50 * sums["disc_loss"] / sums["tokens"]
    gradients = tape.gradient(loss, model.trainable_variables)
    assert all(g is not None for g in gradients)
    assert {tf.convert_to_tensor(g).dtype for g in gradients} == {tf.float32}


def test_refuses_a_backbone_that_is_not_electra_and_a_bad_temperature():
    bert = backbone_from_config({k: v for k, v in CONFIG.items() if k not in ("embedding_size", "model_type")})
    with pytest.raises(ValueError, match="pretrains an ELECTRA discriminator"):
        ReplacedTokenDetectionModel(bert)
    with pytest.raises(ValueError, match="temperature must be positive"):
        ReplacedTokenDetectionModel(backbone_from_config(CONFIG), temperature=0.0)
