"""Pretraining recipes behind one interface (`objective`): `MODEL_TYPES`
maps each `kner.pretrain --model_type` to its recipe.

- `bert`: masked LM with Chinese whole word masking, optionally next-sentence
  prediction (Google BERT, HFL's RoBERTa-wwm: no NSP), AdamW;
- `albert`: Google's `albert_*_zh`: masked LM with n-gram (up to 3 words)
  whole word masking and sentence-order prediction, LAMB;
- `electra`: google-research/electra (HFL's Chinese ELECTRA): a generator
  (masked LM, 85% `[MASK]` / 15% kept) and a discriminator (replaced-token
  detection on the generator's samples) trained jointly, AdamW;
- `distillation`: general distillation (DistilBERT): a student BERT learns
  the masked LM of a frozen teacher (KL at temperature T x T**2, masked LM on
  the gold tokens, cosine of the last hidden states), AdamW.

Example:
>>> model = MODEL_TYPES["albert"].create(backbone, PretrainOptions(sentence_task="sop"))
"""

import dataclasses

from kner.data.pretraining_data import NSP, SOP
from kner.models.pretraining.general_distillation import (
    HIDDEN_PROJECTIONS,
    SOFT_LOSS_POSITIONS,
    DistillationOptions,
    GeneralDistillationModel,
    load_teacher,
)
from kner.models.pretraining.masked_lm import MaskedLMModel, dummy_features, masked_lm_sums
from kner.models.pretraining.objective import LossTerm, ModelType, PretrainingModel, PretrainOptions
from kner.models.pretraining.replaced_token_detection import ReplacedTokenDetectionModel


def _masked_lm(backbone, options: PretrainOptions) -> MaskedLMModel:
    return MaskedLMModel(backbone, sentence_task=options.sentence_task)


def _replaced_token_detection(backbone, options: PretrainOptions) -> ReplacedTokenDetectionModel:
    return ReplacedTokenDetectionModel(
        backbone, options.generator_hidden_size, temperature=options.temperature, disc_weight=options.disc_weight
    )


def _general_distillation(backbone, options: PretrainOptions) -> GeneralDistillationModel:
    if options.distillation is None:
        raise ValueError("general distillation needs a teacher (--teacher_checkpoint)")
    return GeneralDistillationModel(backbone, options.distillation)


MODEL_TYPES = {
    model_type.name: model_type
    for model_type in (
        ModelType(
            "bert",
            "masked LM over whole words, next-sentence prediction with --nsp, AdamW (Google BERT, RoBERTa-wwm)",
            families=("bert", "huggingface"),
            create=_masked_lm,
            defaults={"sop": False, "ngram_mask": 1, "optimizer": "adamw"},
            sentence_tasks=(NSP, SOP),
        ),
        ModelType(
            "albert",
            "Google's albert_*_zh (factorised embedding, shared layers): masked LM over n-grams of whole words, "
            "sentence-order prediction, LAMB",
            families=("albert",),
            create=_masked_lm,
            defaults={"sop": True, "ngram_mask": 3, "optimizer": "lamb"},
            sentence_tasks=(NSP, SOP),
        ),
        ModelType(
            "electra",
            "google-research/electra (HFL's Chinese ELECTRA): a generator (masked LM, --generator_hidden_size of "
            "the discriminator's width) and a discriminator (replaced-token detection on the generator's samples) "
            "trained jointly, AdamW",
            families=("electra",),
            create=_replaced_token_detection,
            defaults={
                "sop": False,
                "ngram_mask": 1,
                "optimizer": "adamw",
                "generator_hidden_size": 0.25,
                "temperature": 1.0,
                "disc_weight": 50.0,
            },
            masking={"mask_probability": 0.85, "random_probability": 0.0},
        ),
        ModelType(
            "distillation",
            "general distillation (DistilBERT): a student BERT (--bert_config, or teacher layers "
            "--init_student_from_teacher_layers) learns the masked LM of a frozen --teacher_checkpoint: "
            "KL x T**2 + masked LM + cosine of the last hidden states, AdamW",
            families=("bert", "huggingface"),
            create=_general_distillation,
            defaults={
                "sop": False,
                "ngram_mask": 1,
                "optimizer": "adamw",
                "teacher_checkpoint": None,  # required: read by this recipe only
                **{field.name: field.default for field in dataclasses.fields(DistillationOptions)[1:]},
            },
        ),
    )
}

__all__ = [
    "HIDDEN_PROJECTIONS",
    "MODEL_TYPES",
    "SOFT_LOSS_POSITIONS",
    "DistillationOptions",
    "GeneralDistillationModel",
    "LossTerm",
    "MaskedLMModel",
    "ModelType",
    "PretrainOptions",
    "PretrainingModel",
    "ReplacedTokenDetectionModel",
    "dummy_features",
    "load_teacher",
    "masked_lm_sums",
]
