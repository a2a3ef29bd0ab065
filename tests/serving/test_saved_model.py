import json
import random
import sys
from pathlib import Path

import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tagger_dirs import build_model_dir, toy_sentence
from tensorflow.core.protobuf import saved_model_pb2
from train_runs import run_child as run

from kner.data.tags import tags_to_spans
from kner.errors import InputError
from kner.serving.predictor import Predictor
from kner.serving.saved_model import check_export_dir, export_model, export_source, exported_from, versions

TEXTS = ["张三在北京", "", "李小四😀去了上海市" * 3]
# Op name prefixes of tensorflow-text kernels: TF Serving has them only at its pinned
# tf-text version, TensorFlow's C loader not at all.
TF_TEXT_OPS = (
    "RegexSplit",
    "CaseFold",
    "WordpieceTokenize",
    "Normalize",
    "UnicodeScript",
    "WhitespaceTokenize",
    "SentencepieceOp",
    "FastWordpiece",
    "FastBert",
    "TFText",
    "Mst",
    "SplitMergeTokenize",
    "RoundRobin",
)


@pytest.fixture(scope="module")
def expected(model_dir):
    return Predictor.from_dir(model_dir).run(TEXTS)


def test_layout_tf_serving_expects(export_dir):
    version = export_dir / "1"
    assert sorted(p.name for p in export_dir.iterdir()) == ["1"]  # no partial write left
    assert (version / "saved_model.pb").is_file()
    assert (version / "variables" / "variables.index").is_file()
    assert sorted(p.name for p in (version / "assets").iterdir()) == ["labels.json", "vocab.txt"]
    assert sorted(p.name for p in (version / "assets.extra").iterdir()) == ["kner_source.json"]


@pytest.mark.slow
def test_an_export_records_its_model_and_refuses_another_models_versions(model_dir, tmp_path):
    """The README demo's export must not silently get a version of another
    model (a flagfile's --export_dir inherited by another run), and a rerun
    says "exported earlier from these weights" only when that is true."""
    export_dir = tmp_path / "export"
    first = export_model(model_dir, export_dir)
    source = export_source(first)
    assert source["model_dir"] == str(model_dir.resolve()) and len(source["weights_sha256"]) == 64
    assert exported_from(first, model_dir)

    other = build_model_dir(tmp_path / "other", seed=1)
    assert not exported_from(first, other)
    message = f"version 1 there was exported from {model_dir.resolve()}, not from {other.resolve()}"
    for refused in (lambda: check_export_dir(export_dir, other), lambda: export_model(other, export_dir)):
        with pytest.raises(InputError, match="--export_dir a folder of its own") as caught:
            refused()
        assert message in str(caught.value) and "kner.export --version=2" in str(caught.value)
    assert versions(export_dir) == [1]
    second = export_model(other, export_dir, version=2)  # on purpose: allowed
    assert second == export_dir / "2" and exported_from(second, other)
    check_export_dir(export_dir, other)  # its latest version is now the other model's
    build_model_dir(other, seed=2)  # retrained: new weights in the same model_dir
    assert not exported_from(second, other)
    check_export_dir(export_dir, other)  # the same model: its next version is welcome


def test_versions_count_up_and_are_never_overwritten(model_dir, tmp_path):
    (tmp_path / "3").mkdir()
    (tmp_path / "notes").mkdir()
    assert export_model(model_dir, tmp_path) == tmp_path / "4"
    assert versions(tmp_path) == [3, 4]
    with pytest.raises(InputError, match="exists"):
        export_model(model_dir, tmp_path, version=3)


@pytest.mark.slow
def test_loads_and_runs_with_tensorflow_alone(export_dir, expected):
    """TF2 loading (`tf.saved_model.load`) and TF1 session loading, which is
    how TF Serving loads (restore op, then init op), in a process that
    imports nothing but TensorFlow."""
    script = f"""
import json, sys
import tensorflow as tf
path, texts = {str(export_dir / "1")!r}, {[t.encode() for t in TEXTS]!r}
out = tf.saved_model.load(path).signatures["serving_default"](text=tf.constant(texts))
out = {{k: v.numpy().tolist() for k, v in out.items()}}
with tf.compat.v1.Session(graph=tf.Graph()) as session:
    signature = tf.compat.v1.saved_model.load(session, ["serve"], path).signature_def["serving_default"]
    fetches = {{k: v.name for k, v in signature.outputs.items()}}
    v1 = {{k: v.tolist() for k, v in session.run(fetches, {{signature.inputs["text"].name: texts}}).items()}}
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("kner", "keras_hub", "tensorflow_text"))
print(json.dumps({{"out": out, "v1": v1, "heavy": heavy}}, default=lambda b: b.decode()))
"""
    result = run(sys.executable, "-c", script)
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["heavy"] == []
    out = answer["out"]
    assert answer["v1"] == out
    for row, prediction in enumerate(expected):
        n = out["num_chars"][row]
        assert out["tags"][row][:n] == prediction.tags
        got = [
            (out["entity_type"][row][k], out["entity_start"][row][k], out["entity_end"][row][k])
            for k in range(out["num_entities"][row])
        ]
        assert got == [(e.type, e.start, e.end) for e in prediction.entities]
        assert out["entity_text"][row][: len(got)] == [e.text for e in prediction.entities]
        assert out["entity_score"][row][: len(got)] == pytest.approx([e.score for e in prediction.entities])
    assert expected[0].entities[0].text == "张三"


def test_graph_uses_core_ops_only(export_dir):
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((export_dir / "1" / "saved_model.pb").read_bytes())
    ops = set()
    for graph in proto.meta_graphs:
        ops |= {node.op for node in graph.graph_def.node}
        for function in graph.graph_def.library.function:
            ops |= {node.op for node in function.node_def}
    assert {"UnicodeDecode", "LookupTableFindV2", "StatelessWhile"} <= ops  # the scan really is there
    assert not [op for op in ops if op.startswith(TF_TEXT_OPS)]
    assert ops <= set(dir(tf.raw_ops)), ops - set(dir(tf.raw_ops))
    assert not [op for op in ops if op in ("PyFunc", "EagerPyFunc", "PyFuncStateless")]


def saved_model_cli() -> list[str]:
    binary = Path(sys.executable).parent / "saved_model_cli"
    if binary.exists():
        return [str(binary)]
    return [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]


@pytest.mark.slow
def test_saved_model_cli_shows_and_runs_the_text_signature(export_dir, expected):
    version = str(export_dir / "1")
    shown = run(*saved_model_cli(), "show", "--dir", version, "--all")
    assert shown.returncode == 0, shown.stderr[-3000:]
    default = shown.stdout.split("signature_def['serving_default']")[1]
    assert "inputs['text'] tensor_info:\n        dtype: DT_STRING\n        shape: (-1)" in default
    assert "signature_def['predict_ids']" in shown.stdout
    for name in ("tags", "entity_type", "entity_start", "entity_end", "entity_text", "entity_score", "num_entities"):
        assert f"outputs['{name}']" in default
    ran = run(
        *saved_model_cli(),
        "run",
        "--dir",
        version,
        "--tag_set",
        "serve",
        "--signature_def",
        "serving_default",
        "--input_exprs",
        "text=['张三在北京']",
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    entity_start = ran.stdout.split("Result for output key entity_start:")[1].split("Result for")[0]
    assert str(expected[0].entities[1].start) in entity_start
    assert "Result for output key entity_text" in ran.stdout


def test_predict_ids_signature(export_dir, model_dir):
    from kner.data.tokenizer import CharTokenizer

    tokenizer = CharTokenizer(model_dir / "vocab.txt")
    ids = [tokenizer.cls_id, *tokenizer.encode("张三在北京"), tokenizer.sep_id, tokenizer.pad_id]
    loaded = tf.saved_model.load(str(export_dir / "1"))
    out = loaded.signatures["predict_ids"](
        token_ids=tf.constant([ids]), padding_mask=tf.constant([[1] * 7 + [0]]), segment_ids=tf.zeros([1, 8], tf.int32)
    )
    tags = [t.decode() for t in out["tags"][0].numpy()]
    assert tags == ["", "B-name", "I-name", "O", "B-loc", "I-loc", "", ""]
    assert out["tag_ids"].dtype == tf.int32


@pytest.mark.slow
def test_bfloat16_export_stores_bfloat16_encoder_weights_and_finds_the_same_entities(export_dir, model_dir, tmp_path):
    """`compute_dtype="bfloat16"`: the encoder's weights are stored as
    bfloat16, the classifier and CRF as float32; loaded in a TensorFlow-only
    process both ways (`tf.saved_model.load`, and the TF1 session loader TF
    Serving uses), it finds the float32 export's entities in >= 99% of texts."""
    rng = random.Random(5)
    texts = [toy_sentence(rng, max_entities=3).text for _ in range(300)] + TEXTS
    bf16 = export_model(model_dir, tmp_path, compute_dtype="bfloat16")
    dtypes = tf.train.load_checkpoint(str(bf16 / "variables" / "variables")).get_variable_to_dtype_map()
    weights = {name: dtype.name for name, dtype in dtypes.items() if "OPTIMIZER" not in name and "/.ATTRIBUTES" in name}
    assert {dtype for name, dtype in weights.items() if "bfloat16" == dtype} and len(set(weights.values())) == 2
    # The classifier kernel and bias, the CRF transitions, start and end scores.
    assert sorted(dtype for dtype in weights.values() if dtype == "float32") == ["float32"] * 5
    script = f"""
import json
import tensorflow as tf
texts = {[t.encode() for t in texts]!r}
def entities(out):
    out = {{k: v.numpy().tolist() if hasattr(v, "numpy") else v.tolist() for k, v in out.items()}}
    return [[(out["entity_type"][r][k].decode(), out["entity_start"][r][k], out["entity_end"][r][k])
             for k in range(out["num_entities"][r])] for r in range(len(texts))]
found = {{}}
for name, path in (("f32", {str(export_dir / "1")!r}), ("bf16", {str(bf16)!r})):
    found[name] = entities(tf.saved_model.load(path).signatures["serving_default"](text=tf.constant(texts)))
with tf.compat.v1.Session(graph=tf.Graph()) as session:
    signature = tf.compat.v1.saved_model.load(session, ["serve"], {str(bf16)!r}).signature_def["serving_default"]
    fetches = {{k: v.name for k, v in signature.outputs.items()}}
    found["bf16_v1"] = entities(session.run(fetches, {{signature.inputs["text"].name: texts}}))
print(json.dumps(found))
"""
    result = run(sys.executable, "-c", script)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["bf16_v1"] == found["bf16"]
    same = sum(a == b for a, b in zip(found["f32"], found["bf16"])) / len(texts)
    assert same >= 0.99, same
    assert sum(len(e) for e in found["f32"]) > 300  # the toy model does find entities


# A random-weight model per scheme, both heads among them: untrained scores
# are where unconstrained decoding breaks the grammar.
DECODED_SCHEMES = [("bio", "crf"), ("bios", "softmax"), ("bioes", "softmax"), ("bmes", "crf")]


@pytest.fixture(scope="module", params=DECODED_SCHEMES, ids=lambda p: "-".join(p))
def random_export(request, tmp_path_factory):
    from tagger_dirs import cached_export, cached_model_dir

    scheme, head = request.param
    base = tmp_path_factory.getbasetemp()
    model_dir = cached_model_dir(base, f"random_{scheme}_{head}", scheme=scheme, head=head, seed=3)
    return scheme, tf.saved_model.load(str(cached_export(base, f"random_{scheme}_{head}_export", model_dir) / "1"))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.text(alphabet="张三李四北京上海市的了在去abc 0", max_size=40), min_size=1, max_size=6))
def test_served_tags_are_always_strictly_valid(random_export, texts):
    """Texts of any length (long ones go through windows) through the
    SavedModel: every row of tags is a sequence the strict reader accepts."""
    scheme, loaded = random_export
    out = loaded.signatures["serving_default"](text=tf.constant([t.encode() for t in texts]))
    for row, count in enumerate(out["num_chars"].numpy()):
        tags = [t.decode() for t in out["tags"][row, :count].numpy()]
        tags_to_spans(tags, scheme, strict=True)
