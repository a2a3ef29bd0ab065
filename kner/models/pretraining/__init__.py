"""Pretraining recipes behind one interface (`objective`): `MODEL_TYPES`
maps each `kner.pretrain --model_type` to its recipe.

- `bert`: masked LM with Chinese whole word masking, optionally next-sentence
  prediction (Google BERT, HFL's RoBERTa-wwm: no NSP), AdamW;
- `albert`: Google's `albert_*_zh`: masked LM with n-gram (up to 3 words)
  whole word masking and sentence-order prediction, LAMB.

Example:
>>> model = MODEL_TYPES["albert"].create(backbone, PretrainOptions(sentence_task="sop"))
"""

from kner.data.pretraining_data import NSP, SOP
from kner.models.pretraining.masked_lm import MaskedLMModel, dummy_features, masked_lm_sums
from kner.models.pretraining.objective import LossTerm, ModelType, PretrainingModel, PretrainOptions


def _masked_lm(backbone, options: PretrainOptions) -> MaskedLMModel:
    return MaskedLMModel(backbone, sentence_task=options.sentence_task)


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
    )
}

__all__ = [
    "MODEL_TYPES",
    "LossTerm",
    "MaskedLMModel",
    "ModelType",
    "PretrainOptions",
    "PretrainingModel",
    "dummy_features",
    "masked_lm_sums",
]
