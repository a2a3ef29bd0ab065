"""The export in TensorFlow's own C loader, with no Python in the process.

`tools/c_loader/run_export.c` is built here with the system C compiler
against the headers and libraries of the installed `tensorflow` wheel
(`tools/c_loader/build.sh`). It loads the export with the tag `serve`
(`TF_LoadSessionFromSavedModel`, the C++ `LoadSavedModel` TF Serving uses),
feeds `serving_default`'s `text` input as DT_STRING and prints every output.
Its answers must be `kner.Predictor`'s and, output for output, those of the
signature called from Python on the same batches.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from onednn import ONEDNN_OFF, ONEDNN_OFF_REASON
from shared_data import shared_file
from test_predictor import TRICKY, same

from kner.serving.predictor import Entity, Prediction

TOOLS = Path(__file__).resolve().parents[2] / "tools" / "c_loader"
BATCH = 5
# The export's max_seq_length is 16: windows of 14 characters.
MIXED = ["", "张", "张三在北京出差，李小四去了上海市" * 4, "😀", "王"]
TEXTS = MIXED + TRICKY + ["张三在北京", "李小四😀去了上海市" * 3]
_SURROGATES = re.compile("[\ud800-\udfff]")

pytestmark = pytest.mark.slow


def c_compiler() -> str | None:
    return shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc") or shutil.which("clang")


@pytest.fixture(scope="module")
def run_export(tmp_path_factory) -> Path:
    """The program, built for this test session."""
    compiler = c_compiler()
    if compiler is None:
        pytest.skip("no C compiler (cc, gcc or clang) on PATH to build tools/c_loader/run_export.c")
    binary = tmp_path_factory.mktemp("c_loader") / "run_export"
    env = {**os.environ, "PYTHON": sys.executable, "CC": compiler}
    built = subprocess.run(["sh", str(TOOLS / "build.sh"), str(binary)], env=env, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-3000:]
    return binary


def run(binary: Path, lines: bytes, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("PYTHONPATH", None)
    return subprocess.run([str(binary), *args], input=lines, capture_output=True, env=env, timeout=600)


def json_lines(texts: list[str]) -> bytes:
    """The program's input: a JSON string per text, sent as the UTF-8 that
    `Predictor` sends (a lone surrogate becomes U+FFFD)."""
    return b"".join(json.dumps(_SURROGATES.sub("\ufffd", t)).encode() + b"\n" for t in texts)


def as_prediction(text: str, row: dict) -> Prediction:
    n, k = row["num_chars"], row["num_entities"]
    entities = [
        Entity(row["entity_type"][j], row["entity_start"][j], row["entity_end"][j], row["entity_text"][j], score)
        for j, score in enumerate(row["entity_score"][:k])
    ]
    # entity_text comes from the graph: equal to the original only without lone surrogates.
    assert all(e.text == _SURROGATES.sub("\ufffd", text[e.start : e.end + 1]) for e in entities)
    return Prediction(row["tags"][:n], [e._replace(text=text[e.start : e.end + 1]) for e in entities])


@pytest.fixture(scope="module")
def answer(run_export, export_dir) -> list[dict]:
    raw = b'"\xff\xfe\xe5\xbc\xa0\xe4\xb8\x89"\n'  # invalid UTF-8 bytes, then 张三
    ran = run(run_export, json_lines(TEXTS) + raw, f"--export_dir={export_dir}", f"--batch_size={BATCH}")
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert b"loaded" in ran.stderr and b"(tag serve)" in ran.stderr
    return [json.loads(line) for line in ran.stdout.decode().splitlines()]


def test_the_c_loader_agrees_with_the_predictor(answer, in_process):
    expected = in_process.run(TEXTS)
    got = [as_prediction(text, row) for text, row in zip(TEXTS, answer)]
    assert same(got, expected)
    assert [e.text for e in got[2].entities][:2] == ["张三", "北京"]  # the long text: windows, entities found
    assert len(got[2].tags) == len(MIXED[2]) > 14


def test_every_output_equals_the_signature_in_python(answer, export_dir):
    encoded = [_SURROGATES.sub("\ufffd", t).encode() for t in TEXTS] + [b"\xff\xfe\xe5\xbc\xa0\xe4\xb8\x89"]
    assert_same_outputs(answer, export_dir, encoded)
    assert answer[-1]["num_chars"] == 4 and answer[-1]["entity_text"][0] == "张三"


def assert_same_outputs(answer: list[dict], export_dir: Path, encoded: list[bytes]) -> None:
    """The program's answers equal the Python signature's, output for output."""
    signature = tf.saved_model.load(str(export_dir / "1")).signatures["serving_default"]
    assert len(answer) == len(encoded)
    for begin in range(0, len(encoded), BATCH):
        outputs = signature(text=tf.constant(encoded[begin : begin + BATCH]))
        assert sorted(answer[begin]) == sorted(outputs)
        for name, value in outputs.items():
            value = value.numpy()
            got = np.array([row[name] for row in answer[begin : begin + BATCH]])
            if value.dtype == object:
                assert got.tolist() == [[s.decode() for s in row] for row in value], name
            elif value.dtype == np.float32:
                np.testing.assert_allclose(got.astype(np.float32), value, rtol=1e-5, err_msg=name)
            else:
                assert got.tolist() == value.tolist(), name


@pytest.mark.parametrize(
    ("head", "decoding"),
    [("global_pointer", "nested"), ("global_pointer", "flat"), ("efficient_global_pointer", "nested")],
)
def test_a_pair_head_export_runs_in_the_c_loader(run_export, tmp_path_factory, head, decoding):
    """Span decoding of a pair head (GlobalPointer, Efficient GlobalPointer)
    inside the graph (windows, chunks sorted by length for an 11,000-character
    text, the windows' rule, nested entities, or the flat option's greedy
    choice) in TensorFlow's C loader."""
    from tagger_dirs import toy_dir

    from kner.models.artifacts import SETTINGS
    from kner.serving.saved_model import export_model

    model_dir = tmp_path_factory.mktemp(f"c_loader_{head}") / "model"
    shutil.copytree(toy_dir(tmp_path_factory.getbasetemp(), head), model_dir)
    settings = json.loads((model_dir / SETTINGS).read_text())
    (model_dir / SETTINGS).write_text(json.dumps({**settings, "decode": decoding}))
    export_dir = model_dir.parent / "export"
    export_model(model_dir, export_dir)
    texts = [*TEXTS, "在北京大学和上海市大学的张三" * 3, "在北京大学和上海市大学的张三" * 800]
    ran = run(run_export, json_lines(texts), f"--export_dir={export_dir}", f"--batch_size={BATCH}")
    assert ran.returncode == 0, ran.stderr[-3000:]
    answer = [json.loads(line) for line in ran.stdout.decode().splitlines()]
    assert_same_outputs(answer, export_dir, [_SURROGATES.sub("\ufffd", t).encode() for t in texts])
    found = [(t, s, e) for t, s, e in zip(*(answer[-2][k] for k in ("entity_type", "entity_start", "entity_end")))]
    assert set(answer[-2]["tags"]) == {""} and len(answer[-1]["entity_type"]) >= 2_400
    if decoding == "nested":
        assert {("loc", 1, 2), ("org", 1, 4), ("loc", 15, 16), ("org", 15, 18)} <= set(found)  # across windows
    else:
        assert found and all(a[2] < b[1] for a, b in zip(found, found[1:]))  # no two overlap


def test_a_span_export_runs_in_the_c_loader(run_export, tmp_path_factory):
    """The span head's decoding inside the graph (start and end logits merged
    over windows, nearest ends, chunks sorted by length for an
    11,000-character text) in TensorFlow's C loader."""
    from tagger_dirs import cached_export, toy_dir

    base = tmp_path_factory.getbasetemp()
    export_dir = cached_export(base, "toy_span_export", toy_dir(base, "span"))
    texts = [*TEXTS, "张三在北京出差，李小四去了上海市" * 700]
    ran = run(run_export, json_lines(texts), f"--export_dir={export_dir}", f"--batch_size={BATCH}")
    assert ran.returncode == 0, ran.stderr[-3000:]
    answer = [json.loads(line) for line in ran.stdout.decode().splitlines()]
    assert_same_outputs(answer, export_dir, [_SURROGATES.sub("\ufffd", t).encode() for t in texts])
    assert set(answer[2]["tags"]) == {""} and answer[2]["entity_text"][:4] == ["张三", "北京", "李小四", "上海市"]
    assert len(answer[-1]["entity_type"]) >= 2_700  # 4 entities x 700, windows included


def test_bad_input_is_one_line_and_status_2(run_export, export_dir, tmp_path):
    ran = run(run_export, '"张三"\n张三在北京\n'.encode(), f"--export_dir={export_dir}")
    assert ran.returncode == 2
    # The last line: TensorFlow's libraries log a few start-up lines before main().
    assert last_line(ran.stderr) == "run_export: stdin, line 2: " + (
        'not a JSON string (expected one JSON string per line, e.g. "张三在北京")'
    )
    ran = run(run_export, b"", f"--export_dir={tmp_path}")
    assert ran.returncode == 2
    assert last_line(ran.stderr).startswith(f"run_export: {tmp_path}: no saved_model.pb")
    assert last_line(ran.stderr).endswith("check --export_dir")


def last_line(stderr: bytes) -> str:
    return stderr.decode().strip().splitlines()[-1]


@pytest.mark.parametrize(
    "options",
    [
        {"compute_dtype": "bfloat16"},
        pytest.param({"compute_dtype": "int8"}, marks=pytest.mark.skipif(ONEDNN_OFF, reason=ONEDNN_OFF_REASON)),
        {"jit_compile": True},
        {"tensor_parallel": 2},
    ],
    ids=["bfloat16", "int8", "xla", "tensor_parallel"],
)
def test_each_kind_of_export_loads_and_answers_as_in_python(run_export, model_dir, tmp_path, options):
    """The reduced-precision encoders (bfloat16 matmuls; int8 projections,
    oneDNN's quantized kernel), the XLA regions (`--jit_compile`) and the
    encoder in independent parts (`--tensor_parallel`) in TensorFlow's C
    loader, as the signature in Python answers."""
    from kner.serving.saved_model import export_model

    export_model(model_dir, tmp_path, **options)
    ran = run(run_export, json_lines(TEXTS), f"--export_dir={tmp_path}", f"--batch_size={BATCH}")
    assert ran.returncode == 0, ran.stderr[-3000:]
    answer = [json.loads(line) for line in ran.stdout.decode().splitlines()]
    signature = tf.saved_model.load(str(tmp_path / "1")).signatures["serving_default"]
    encoded = [_SURROGATES.sub("\ufffd", t).encode() for t in TEXTS]
    assert len(answer) == len(encoded)
    for begin in range(0, len(encoded), BATCH):
        outputs = {k: v.numpy() for k, v in signature(text=tf.constant(encoded[begin : begin + BATCH])).items()}
        for row, got in enumerate(answer[begin : begin + BATCH]):
            for name in ("tags", "entity_type", "entity_start", "entity_end", "num_entities"):
                value = outputs[name][row]
                expected = [s.decode() for s in value] if value.dtype == object else value.tolist()
                assert got[name] == expected, name
    assert any(row["num_entities"] for row in answer)


def test_an_english_wordpiece_export_runs_in_the_c_loader(run_export, tmp_path):
    """WordPiece in the graph (cased, no lower-casing), windows over
    sub-tokens, entities at the first sub-token of each word, character
    offsets into the raw text: in TensorFlow's C loader as in Python."""
    from tagger_dirs import english_model_dir
    from test_text_units import TEXTS as ENGLISH
    from test_text_units import always_b_person

    from kner.models.artifacts import WEIGHTS
    from kner.serving.saved_model import export_model

    model, model_dir = english_model_dir(tmp_path / "model", shared_file("vocab/bert-base-cased-vocab.txt"))
    always_b_person(model)
    model.save_weights(str(model_dir / WEIGHTS))
    export_dir = tmp_path / "export"
    export_model(model_dir, export_dir)
    texts = [*ENGLISH, "Zürich", *TRICKY]
    ran = run(run_export, json_lines(texts), f"--export_dir={export_dir}", f"--batch_size={BATCH}")
    assert ran.returncode == 0, ran.stderr[-3000:]
    answer = [json.loads(line) for line in ran.stdout.decode().splitlines()]
    assert_same_outputs(answer, export_dir, [_SURROGATES.sub("\ufffd", t).encode() for t in texts])
    first = answer[0]
    words = first["entity_text"][: first["num_entities"]]
    assert words[:7] == ["Kaitlyn", "flew", "from", "Tiruchirappalli", "to", "Zürich", ","]
    for text, row in zip(ENGLISH, answer):
        for start, end, entity in zip(row["entity_start"], row["entity_end"], row["entity_text"]):
            assert text[start : end + 1] == entity
