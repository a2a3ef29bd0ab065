"""Replaced-token detection: ELECTRA's pretraining recipe
(google-research/electra `run_pretraining.py` with `electra_objective`), a
generator and a discriminator trained jointly.

For each batch of masked features (`kner.data.masking.Masker` with ELECTRA's
`mask_probability=0.85, random_probability=0`: 85% of the chosen tokens
`[MASK]`, 15% kept, none random, `pretrain_helpers.mask`):

1. the generator, a small masked LM (`kner.backbones.electra_heads.build_generator`,
   sharing the discriminator's embeddings), predicts the chosen tokens. Its
   head `generator_predictions` is `get_token_logits`: a dense layer from the
   generator's width to `embedding_size` with the encoder's activation,
   LayerNorm (epsilon 1e-12), logits against the shared word embeddings plus
   an output bias;
2. at every chosen position, kept ones included, a token is sampled from
   softmax(logits / `temperature`) by the Gumbel-max trick
   (`sample_from_softmax`: argmax of logits / temperature + Gumbel noise),
   under a stop-gradient; the noise comes from each example's own
   `example_seed`, so every `tf.distribute` strategy and a resumed run draw
   the same samples;
3. the discriminator (the encoder being pretrained) reads the original text
   with the samples at the chosen positions and labels every token: 1,
   "replaced", where the sample differs from the original token; 0
   elsewhere, a sample that equals the original included (`_get_fake_data`).
   Its head `discriminator_predictions` (`_get_discriminator_output`): a
   dense layer `hidden -> hidden` with the encoder's activation, then one
   logit per token (`dense_1`);
4. loss = the generator's masked-LM loss (per prediction) + `disc_weight`
   (50) x the discriminator's sigmoid cross entropy per non-padding token
   (`[CLS]` and `[SEP]` included, as Google's `input_mask`). No gradient goes
   through the sampling: the discriminator's loss reaches the generator only
   through the shared embeddings, which are the discriminator's own.

Metrics (`report`, over training windows and held-out text): the generator's
`masked_lm_accuracy` and `masked_lm_loss`; the discriminator's `disc_loss`,
`disc_accuracy` (over non-padding tokens), `disc_precision` and
`disc_recall` of "replaced" (Google's metric names); and
`sampled_replacement_rate`, the share of chosen positions whose sample
differs from the original (Google's `sampled_masked_lm_accuracy` is one minus
it). `best_metric` is the generator's `masked_lm_accuracy`: the
discriminator's own accuracy measures how hard the generator's replacements
are as much as how good the discriminator is (it is highest while the
generator is poor), so it cannot pick a checkpoint; the generator's accuracy
rises while the two train together.

Under a mixed-precision policy both encoders compute in bfloat16; both heads,
the sampling and the losses in float32; the variables are float32.

The checkpoint is google-research/electra's layout (`kner.backbones.electra`,
`kner.backbones.electra_heads`): `electra_model.*` with `electra/*` (the
discriminator), `generator/*`, `generator_predictions/*` and
`discriminator_predictions/*`, plus `discriminator.json`, `generator.json`
(HFL's keys) and `vocab.txt`. kner's ELECTRA loader reads the discriminator
from it for `kner.train --init_checkpoint`.

Example:
>>> model = ReplacedTokenDetectionModel(discriminator, generator_hidden_size=0.25)
>>> outputs = model(features)  # masked_lm_logits [batch, predictions, vocab], disc_logits [batch, length], ...
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import keras
import tensorflow as tf

from kner.backbones import electra_heads
from kner.backbones.encoder import ACTIVATIONS, EncoderBackbone
from kner.backbones.loader import save_google_checkpoint
from kner.backbones.weight_table import Weight
from kner.models.pretraining.masked_lm import LAYER_NORM_EPSILON, VOCAB_FILE, MaskedLMHead, masked_lm_sums
from kner.models.pretraining.objective import LossTerm, PretrainingModel

ENCODER_INPUTS = ("token_ids", "segment_ids", "padding_mask")


class DiscriminatorHead(keras.layers.Layer):
    """`[batch, length, hidden]` -> `[batch, length]` logits of "replaced":
    `dense` (`hidden -> hidden`, the encoder's activation, truncated-normal
    init) then `dense_1` (`hidden -> 1`, `tf.layers.dense`'s default
    Glorot-uniform init), as `_get_discriminator_output`."""

    def __init__(self, hidden_dim: int, activation: str, initializer_range: float = 0.02, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(
            hidden_dim,
            activation=ACTIVATIONS[activation],
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=initializer_range),
            dtype=self.dtype_policy,
            name="dense",
        )
        self.output_dense = keras.layers.Dense(1, dtype=self.dtype_policy, name="dense_1")

    def build(self, input_shape):
        self.dense.build(input_shape)
        self.output_dense.build((*input_shape[:-1], self.dense.units))

    def call(self, hidden):
        return keras.ops.squeeze(self.output_dense(self.dense(keras.ops.cast(hidden, self.compute_dtype))), -1)


def gumbel_sample(logits: tf.Tensor, example_seeds: tf.Tensor, temperature: float = 1.0) -> tf.Tensor:
    """int32 `[batch, predictions]`: a token per prediction drawn from
    softmax(`logits` / `temperature`) (`logits` float32 `[batch, predictions,
    vocab]`) as argmax(logits / temperature + Gumbel noise), google-research/electra
    `sample_from_softmax`; the noise of row `i` from `example_seeds[i]`
    (int64 `[batch, 2]`). No gradient flows back into `logits`."""
    scaled = tf.stop_gradient(logits) / temperature
    shape = tf.shape(scaled)[1:]
    uniform = tf.map_fn(
        lambda seed: tf.random.stateless_uniform(shape, seed), example_seeds, fn_output_signature=tf.float32
    )
    gumbel = -tf.math.log(-tf.math.log(uniform + 1e-9) + 1e-9)
    return tf.argmax(scaled + gumbel, axis=-1, output_type=tf.int32)


def replace_tokens(features: dict[str, tf.Tensor], sampled: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """The discriminator's input and labels: `token_ids` with `sampled`
    (int32 `[batch, predictions]`) at the predicted positions (those of
    `masked_lm_positions` with a non-zero weight), and int32 `[batch,
    length]` 1 where a sample differs from the original token
    (`masked_lm_ids`), 0 elsewhere."""
    token_ids = features["token_ids"]
    predicted = tf.cast(features["masked_lm_weights"] > 0, tf.int32)
    at = tf.one_hot(features["masked_lm_positions"], tf.shape(token_ids)[1], dtype=tf.int32) * predicted[..., None]
    corrupted = tf.where(tf.reduce_max(at, axis=1) > 0, tf.reduce_sum(at * sampled[..., None], axis=1), token_ids)
    differs = tf.cast(tf.not_equal(sampled, features["masked_lm_ids"]), tf.int32)
    return corrupted, tf.reduce_sum(at * differs[..., None], axis=1)


class ReplacedTokenDetectionModel(PretrainingModel):
    """An ELECTRA discriminator (`EncoderBackbone`, electra layout), its
    generator and both heads (module doc).

    Called on the features of `kner.data.masking.Masker` (`token_ids`,
    `segment_ids`, `padding_mask` `[batch, length]`; `masked_lm_positions`,
    `masked_lm_ids`, `masked_lm_weights` `[batch, predictions]`;
    `example_seed` `[batch, 2]`), it returns float32 `masked_lm_logits`
    `[batch, predictions, vocab_size]` (the generator's), int32 `sampled_ids`
    `[batch, predictions]`, int32 `replaced` `[batch, length]` (the
    discriminator's labels) and float32 `disc_logits` `[batch, length]`.

    Args:
        backbone: the discriminator.
        generator_hidden_size: the generator's width as a fraction of the
            discriminator's (0.25: HFL's small, the paper's base and large).
        temperature: of the generator's softmax when sampling.
        disc_weight: the discriminator loss's weight in the loss (50).
    """

    best_metric = "masked_lm_accuracy"

    def __init__(
        self,
        backbone: EncoderBackbone,
        generator_hidden_size: float = 0.25,
        temperature: float = 1.0,
        disc_weight: float = 50.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(backbone, EncoderBackbone) or backbone.layout != "electra":
            raise ValueError(f"replaced-token detection pretrains an ELECTRA discriminator, not {type(backbone)}")
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.backbone, self.temperature, self.disc_weight = backbone, temperature, disc_weight
        self.generator = electra_heads.build_generator(backbone, generator_hidden_size)
        initializer = keras.initializers.TruncatedNormal(stddev=backbone.initializer_range)
        # Both heads compute in float32 under every policy (module docstring).
        self.generator_head = MaskedLMHead(
            token_embedding=backbone.token_embedding,
            intermediate_activation=ACTIVATIONS[backbone.activation],
            layer_norm_epsilon=LAYER_NORM_EPSILON,
            kernel_initializer=initializer,
            dtype="float32",
            name="generator_predictions",
        )
        self.discriminator_head = DiscriminatorHead(
            backbone.hidden_dim,
            backbone.activation,
            backbone.initializer_range,
            dtype="float32",
            name="discriminator_predictions",
        )

    @property
    def loss_terms(self) -> tuple[LossTerm, ...]:
        """The generator's masked LM per prediction, `disc_weight` x the
        discriminator's loss per non-padding token."""
        return (LossTerm("masked_lm_loss", "masked_lm_count"), LossTerm("disc_loss", "tokens", self.disc_weight))

    def call(self, features: dict[str, tf.Tensor], training: bool = False) -> dict[str, tf.Tensor]:
        inputs = {name: features[name] for name in ENCODER_INPUTS}
        generated = self.generator(inputs, training=training)["sequence_output"]
        logits = self.generator_head(generated, features["masked_lm_positions"])
        sampled = gumbel_sample(logits, features["example_seed"], self.temperature)
        corrupted, replaced = replace_tokens(features, sampled)
        hidden = self.backbone({**inputs, "token_ids": corrupted}, training=training)["sequence_output"]
        return {
            "masked_lm_logits": logits,
            "sampled_ids": sampled,
            "replaced": replaced,
            "disc_logits": self.discriminator_head(hidden),
        }

    def loss_sums(self, features: dict[str, tf.Tensor], outputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """`masked_lm_sums` of the generator, and over the non-padding
        tokens: `disc_loss` (sigmoid cross entropy), `tokens`, `disc_correct`,
        `disc_true_positive`, `disc_predicted_positive` and `disc_replaced`
        (tokens labelled "replaced")."""
        sums = masked_lm_sums(features, outputs["masked_lm_logits"])
        logits = outputs["disc_logits"]
        labels = tf.cast(outputs["replaced"], tf.float32)
        tokens = tf.cast(features["padding_mask"], tf.float32)
        losses = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
        predicted = tf.cast(logits > 0, tf.float32)  # Google's round((sign(logits) + 1) / 2)
        sums.update(
            disc_loss=tf.reduce_sum(losses * tokens),
            tokens=tf.reduce_sum(tokens),
            disc_correct=tf.reduce_sum(tf.cast(tf.equal(predicted, labels), tf.float32) * tokens),
            disc_true_positive=tf.reduce_sum(predicted * labels * tokens),
            disc_predicted_positive=tf.reduce_sum(predicted * tokens),
            disc_replaced=tf.reduce_sum(labels * tokens),
        )
        return sums

    def loss_counts(self, features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        return {
            "masked_lm_count": tf.reduce_sum(features["masked_lm_weights"]),
            "tokens": tf.reduce_sum(tf.cast(features["padding_mask"], tf.float32)),
        }

    def report(self, totals: Mapping[str, float]) -> dict[str, float | int]:
        """`masked_lm_accuracy`, `masked_lm_loss`, `disc_loss`,
        `disc_accuracy`, `disc_precision`, `disc_recall`,
        `sampled_replacement_rate`, `masked_lm_predictions`, `examples`."""

        def ratio(numerator: str, denominator: str) -> float:
            return totals.get(numerator, 0.0) / max(totals.get(denominator, 0.0), 1.0)

        return {
            "masked_lm_accuracy": ratio("masked_lm_correct", "masked_lm_count"),
            "masked_lm_loss": ratio("masked_lm_loss", "masked_lm_count"),
            "disc_loss": ratio("disc_loss", "tokens"),
            "disc_accuracy": ratio("disc_correct", "tokens"),
            "disc_precision": ratio("disc_true_positive", "disc_predicted_positive"),
            "disc_recall": ratio("disc_true_positive", "disc_replaced"),
            "sampled_replacement_rate": ratio("disc_replaced", "masked_lm_count"),
            "masked_lm_predictions": int(totals.get("masked_lm_count", 0.0)),
            "examples": int(totals.get("examples", 0.0)),
        }

    def heads(self) -> dict[str, list[Weight]]:
        """`generator` (its encoder but the shared embeddings, and
        `generator_predictions`) and `discriminator_predictions`, under
        google-research/electra's names."""
        head = self.generator_head
        return {
            electra_heads.GENERATOR: electra_heads.generator_weights(
                self.generator, head._intermediate_dense, head._intermediate_layer_norm, head._bias
            ),
            electra_heads.DISCRIMINATOR: electra_heads.discriminator_weights(
                self.discriminator_head.dense, self.discriminator_head.output_dense
            ),
        }

    def describe(self) -> str:
        """` by a generator (64 hidden, 1 head) + replaced-token detection x 50 (temperature 1)`."""
        generator = self.generator
        heads = f"{generator.num_heads} head" + ("s" if generator.num_heads > 1 else "")
        return (
            f" by a generator ({generator.hidden_dim} hidden, {heads}) + replaced-token detection"
            f" x {self.disc_weight:g} (temperature {self.temperature:g})"
        )

    def describe_head(self, head: str) -> str:
        return electra_heads.DESCRIPTIONS[head]

    def save_checkpoint(self, directory: str | Path, vocab_file: str | Path) -> tuple[Path, str]:
        weights = [weight for part in self.heads().values() for weight in part]
        generator_json = json.dumps(electra_heads.generator_config(self.generator), indent=2) + "\n"
        prefix = save_google_checkpoint(
            self.backbone, directory, vocab_file, weights, VOCAB_FILE, {electra_heads.GENERATOR_CONFIG: generator_json}
        )
        return prefix, (
            "electra layout: electra/* (discriminator), generator/*, generator_predictions/*, "
            "discriminator_predictions/*; discriminator.json, generator.json"
        )
