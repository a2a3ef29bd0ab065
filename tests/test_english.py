"""English end to end: `kner.train` on a WNUT-17 sample with WordPiece
(flags/english_cased.cfg, shortened), the export, entities whose offsets
slice the raw text; and the text flags defaulting from a Google-layout
uncased checkpoint."""

import json
import re
import sys

import pytest
import tensorflow as tf
from shared_data import shared_file
from train_runs import run_child, start_train

from kner.data.corpus import read_corpus
from kner.serving.predictor import Predictor

pytestmark = pytest.mark.slow
RAW = [
    "Kaitlyn and Marcus flew from Tiruchirappalli to Zürich on Friday!",
    "我在Google工作, with Sundar.",
    "",
    "The Empire State Building " * 12,  # longer than a window of 30 sub-tokens
]


def sample(source, target, sentences):
    """The first `sentences` sentences of a CoNLL file."""
    blocks = re.split(r"\n[ \t]*\n", source.read_text(encoding="utf-8").strip("\n"))
    target.write_text("\n\n".join(blocks[:sentences]) + "\n", encoding="utf-8")
    return target


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("english")
    train = sample(shared_file("wnut17/train.conll"), base / "train.conll", 48)
    dev = sample(shared_file("wnut17/dev.conll"), base / "dev.conll", 24)
    short = dict(train_file=train, dev_file=dev, epochs=2, batch_size=8, max_seq_length=32, log_every=2)
    cased = dict(flagfile="flags/english_cased.cfg", model_dir=base / "cased", export_dir=base / "export", **short)
    google = write_uncased_checkpoint(base / "uncased_L-1_H-32_A-2")
    uncased = dict(init_checkpoint=google, input_format="conll", model_dir=base / "uncased", head="softmax", **short)
    processes = {
        name: start_train(base / f"{name}.log", **flags) for name, flags in (("cased", cased), ("uncased", uncased))
    }
    try:
        for name, process in processes.items():
            assert process.wait(timeout=600) == 0, (base / f"{name}.log").read_text()[-3000:]
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
    logs = {name: (base / f"{name}.log").read_text() for name in processes}
    return {"base": base, "logs": logs, "dev": dev}


def write_uncased_checkpoint(directory):
    """A random 1-layer BERT in Google's layout with the English uncased vocab."""
    import keras
    from tagger_dirs import tiny_config

    from kner.checkpoint import backbone_from_config, save_google_checkpoint
    from kner.data.vocab import read_vocab

    vocab = shared_file("vocab/bert-base-uncased-vocab.txt")
    keras.utils.set_random_seed(5)
    backbone = backbone_from_config(tiny_config(len(read_vocab(vocab))))
    save_google_checkpoint(backbone, directory, vocab_file=vocab)
    return directory


def test_training_says_and_saves_how_it_tokenized(runs):
    base, logs = runs["base"], runs["logs"]
    cased = json.loads((base / "cased" / "settings.json").read_text())
    assert (cased["tokenizer"], cased["do_lower_case"], cased["label_units"]) == ("wordpiece", False, "words")
    assert (
        "tokenizer wordpiece (28,996 vocab entries, do_lower_case=false), labels on the first token of each word"
        in logs["cased"]
    )
    uncased = json.loads((base / "uncased" / "settings.json").read_text())
    # Nothing said: the checkpoint's vocab and folder name decide.
    assert (uncased["tokenizer"], uncased["do_lower_case"]) == ("wordpiece", True)
    assert "truncated to 30 tokens" in logs["cased"]


def test_dev_scores_are_over_words(runs):
    report = json.loads((runs["base"] / "cased" / "eval_report.json").read_text())
    dev = read_corpus(runs["dev"], "conll")
    assert report["micro"]["support"] == sum(len(s.spans) for s in dev) > 0
    assert "seqeval" in report  # one tag per word


def test_the_export_returns_entities_whose_offsets_slice_the_raw_text(runs):
    export = runs["base"] / "export" / "1"
    out = tf.saved_model.load(str(export)).signatures["serving_default"](text=tf.constant(RAW))
    out = {k: v.numpy() for k, v in out.items()}
    for row, text in enumerate(RAW):
        for k in range(out["num_entities"][row]):
            start, end = out["entity_start"][row, k], out["entity_end"][row, k]
            assert text[start : end + 1] == out["entity_text"][row, k].decode()
        units = [text[s : e + 1] for s, e in zip(out["unit_start"][row], out["unit_end"][row]) if s >= 0]
        assert units == text.replace(",", " , ").replace("!", " !").replace(".", " .").split() or row == 1
    mixed = [RAW[1][s : e + 1] for s, e in zip(out["unit_start"][1], out["unit_end"][1]) if s >= 0]
    assert mixed == ["我", "在", "Google", "工", "作", ",", "with", "Sundar", "."]
    in_process = Predictor.from_dir(runs["base"] / "cased").run(RAW)
    exported = Predictor.from_dir(export).run(RAW)
    assert [[e[:4] for e in p.entities] for p in in_process] == [[e[:4] for e in p.entities] for p in exported]
    assert [p.tags for p in in_process] == [p.tags for p in exported]
    assert len(exported[3].tags) == 4 * 12


def test_predict_writes_entities_of_english_text(runs, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(RAW) + "\n", encoding="utf-8")
    output = tmp_path / "out.jsonl"
    export = runs["base"] / "export"
    args = [f"--export_dir={export}", f"--input={texts}", f"--output={output}", "--output_format=jsonl"]
    ran = run_child(sys.executable, "-m", "kner.predict", *args)
    assert ran.returncode == 0, ran.stderr[-2000:]
    lines = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert [line["text"] for line in lines] == RAW


def test_predict_tags_conll_words_and_scores_them(runs, tmp_path):
    output = tmp_path / "dev.predicted.conll"
    export = runs["base"] / "export"
    args = [f"--export_dir={export}", f"--input={runs['dev']}", "--input_format=conll", f"--output={output}"]
    ran = run_child(sys.executable, "-m", "kner.predict", *args, "--output_format=conll")
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "micro" in ran.stdout  # the dev file is labelled: scored over words
    gold, predicted = read_corpus(runs["dev"], "conll"), read_corpus(output, "conll")
    assert [s.text for s in predicted] == [s.text for s in gold]  # one line per word, as read
