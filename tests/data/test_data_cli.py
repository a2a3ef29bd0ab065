import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_corpus import BAD_INPUTS, CMEEE, SURROGATE_LINE, write_bad_input

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"


def run_data(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kner.data", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )


def test_stats_on_cluener_train():
    path = DATA / "cluener" / "train.json"
    if not path.exists():
        pytest.skip(f"CLUENER train set not found at {path}")
    result = run_data("stats", path)
    assert result.returncode == 0, result.stderr
    assert re.search(r"^sentences +10748$", result.stdout, re.MULTILINE)
    assert re.search(
        r"^length +p50 \d+  p90 \d+  p95 \d+  p99 \d+  max 50$",
        result.stdout,
        re.MULTILINE,
    )
    types = re.findall(r"^  (\w+) +(\d+)$", result.stdout, re.MULTILINE)
    assert types == [
        ("name", "3755"),
        ("organization", "3210"),
        ("position", "3141"),
        ("company", "2980"),
        ("address", "2891"),
        ("game", "2376"),
        ("government", "1835"),
        ("scene", "1521"),
        ("book", "1139"),
        ("movie", "1123"),
    ]


def test_stats_counts(tmp_path):
    path = tmp_path / "in.txt"
    lengths = [1, 2, 3, 4, 10]
    lines = []
    for length in lengths:
        lines += ["字 B-x"] + ["字 I-x"] * (length - 1) + [""]
    lines += ["字 B-y", ""]
    path.write_text("\n".join(lines))
    result = run_data("stats", path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:5] == [
        "sentences   6",
        "characters  21",
        "length      p50 2  p90 10  p95 10  p99 10  max 10",
        "entities    6 in 2 types",
        "  x       5",
    ]


def test_stats_count_overlapping_pairs(tmp_path):
    path = tmp_path / "cmeee.json"
    path.write_text(json.dumps(CMEEE, ensure_ascii=False), encoding="utf-8")
    result = run_data("stats", path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-4:] == [
        "overlapping entity pairs (in sentences)",
        "  nested            1  (1)",
        "  crossing          2  (1)",
        "  same extent       1  (1)",
    ]


def test_split_draws_a_seeded_dev_set_and_keeps_file_order(tmp_path):
    source = tmp_path / "all.json"
    records = [
        {"text": f"第{i}句", "entities": [{"start_idx": 0, "end_idx": 0, "type": "x", "entity": "第"}]}
        for i in range(20)
    ]
    source.write_text(json.dumps(records, ensure_ascii=False, indent=1), encoding="utf-8")

    def split(seed: int, *extra: str) -> tuple[list[str], list[str]]:
        train, dev = tmp_path / f"train{seed}.json", tmp_path / f"dev{seed}.json"
        result = run_data("split", source, train, dev, "--dev_size=5", f"--seed={seed}", *extra)
        assert result.returncode == 0, result.stderr
        return tuple([r["text"] for r in json.loads(path.read_text(encoding="utf-8"))] for path in (train, dev))

    train, dev = split(1)
    assert len(dev) == 5 and len(train) == 15 and set(train) | set(dev) == {r["text"] for r in records}
    assert dev == sorted(dev, key=lambda t: int(t[1:-1]))  # file order
    assert split(1) == (train, dev) and split(2)[1] != dev
    assert len(split(3, "--train_size=4")[0]) == 4
    too_many = run_data("split", source, tmp_path / "a.json", tmp_path / "b.json", "--dev_size=20")
    assert too_many.returncode == 2 and "cannot draw 20 dev" in too_many.stderr


@pytest.mark.parametrize("to", ["bio", "bios", "bioes", "bmes", "cluener", "cmeee"])
def test_convert_round_trip(tmp_path, to):
    source = tmp_path / "in.json"
    records = [
        {"text": "叶老桂在浙商银行", "label": {"name": {"叶老桂": [[0, 2]]}}},
        {"text": "浙商", "label": {"company": {"浙": [[0, 0]]}}},
    ]
    source.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records))
    converted = run_data("convert", source, tmp_path / "out", f"--output_format={to}")
    assert converted.returncode == 0, converted.stderr
    assert "wrote 2 sentences" in converted.stdout
    back = run_data("convert", tmp_path / "out", tmp_path / "back.json", "--output_format", "cluener")
    assert back.returncode == 0, back.stderr
    lines = (tmp_path / "back.json").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == records


def test_convert_lenient_and_given_scheme(tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("中 I-LOC\n国 E-LOC\n\n中 B-LOC\n国 E-LOC\n")
    strict = run_data("convert", source, tmp_path / "out.json", "--output_format=cluener")
    assert strict.returncode == 2
    assert "in.txt:1: 'I-LOC' continues no entity" in strict.stderr
    lenient = run_data("convert", "--lenient", source, tmp_path / "out.json", "--output_format=cluener")
    assert lenient.returncode == 0, lenient.stderr
    assert "repaired 1 invalid bioes tag(s)" in lenient.stderr
    assert '"LOC": {"中国": [[0, 1]]}' in (tmp_path / "out.json").read_text(encoding="utf-8")
    given = run_data("validate", source, "--input_tag_scheme=bio", "--lenient")
    assert given.returncode == 2
    assert "in.txt:2: unknown tag prefix 'E'" in given.stderr


def test_convert_drops_nested_with_warning(tmp_path):
    source = tmp_path / "in.json"
    label = {"book": {"《浙商》": [[0, 3]]}, "company": {"浙商": [[1, 2]]}}
    source.write_text(json.dumps({"text": "《浙商》", "label": label}, ensure_ascii=False))
    result = run_data("convert", source, tmp_path / "out.bio", "--output_format=bio")
    assert result.returncode == 0, result.stderr
    assert "dropped 1 entity nested in another" in result.stderr
    assert (tmp_path / "out.bio").read_text(encoding="utf-8").split("\n")[:2] == [
        "《 B-book",
        "浙 I-book",
    ]


def test_validate_ok(tmp_path):
    path = tmp_path / "ok.json"
    path.write_text('{"text": "ab", "label": {"x": {"a": [[0, 0]], "b": [[1, 1]]}}}\n{"text": "c"}')
    result = run_data("validate", path)
    assert (result.returncode, result.stdout) == (0, "OK: 2 sentences, 2 entities\n")
    path.write_text('{"id": 0, "text": "ab"}\n')
    assert run_data("validate", path).stdout == "OK: 1 sentence, unlabelled\n"


@pytest.mark.parametrize("name, content, line, message", BAD_INPUTS)
def test_validate_bad_input_prints_one_line(tmp_path, name, content, line, message):
    path = write_bad_input(tmp_path, name, content)
    result = run_data("validate", path)
    assert result.returncode == 2
    assert result.stdout == ""
    location = f"{path}:{line}:" if line else f"{path}:"
    assert result.stderr.startswith(f"error: {location} ")
    assert message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_help_and_usage():
    help_text = run_data("--help")
    assert help_text.returncode == 0
    assert "--input_tag_scheme" in help_text.stdout and "convert IN OUT" in help_text.stdout
    assert "Traceback" not in help_text.stderr
    unknown = run_data("frobnicate")
    assert unknown.returncode == 2
    assert (
        unknown.stderr
        == "error: expected a command: stats, convert, validate, split (see python -m kner.data --help)\n"
    )
    assert run_data("convert", "only-one-file", "--output_format=bio").returncode == 2
    bad_enum = run_data("stats", "x.json", "--input_tag_scheme=iob3")
    assert bad_enum.returncode == 2 and bad_enum.stderr.count("\n") == 1
    assert bad_enum.stderr.startswith("error: --input_tag_scheme=iob3: value should be one of <auto|bio|")


def test_convert_writes_nothing_when_the_input_is_bad(tmp_path):
    """Issue 11: the broken \\u escape fails reading (exit 2) and leaves no
    output; --lenient converts it with U+FFFD in its place."""
    path = write_bad_input(tmp_path, "bad.json", SURROGATE_LINE)
    result = run_data("convert", path, tmp_path / "out.bios", "--output_format=bios")
    assert result.returncode == 2 and "lone surrogate U+D83D" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json"]
    result = run_data("convert", path, tmp_path / "out.bios", "--output_format=bios", "--lenient")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.bios").read_text(encoding="utf-8").startswith("\ufffd O\n王 B-name\n")
    result = run_data("convert", path, tmp_path / "missing" / "out.bios", "--output_format=bios", "--lenient")
    assert result.returncode == 2 and "does not exist" in result.stderr


def test_conll_through_the_command_line(tmp_path):
    from test_corpus import CONLL_IOB1

    source = tmp_path / "eng.train"
    source.write_text(CONLL_IOB1)
    stats = run_data("stats", source, "--input_tag_scheme=iob1")
    assert stats.returncode == 0, stats.stderr
    assert stats.stdout.split("\n")[:3] == ["sentences   4", "words       16", "characters  90"]
    converted = run_data("convert", source, tmp_path / "eng.bioes", "--input_tag_scheme=iob1", "--output_format=bioes")
    assert converted.returncode == 0, converted.stderr
    assert (tmp_path / "eng.bioes").read_text().split("\n")[10:12] == ["Peter B-PER", "Blackburn E-PER"]
    refused = run_data("validate", source)
    assert refused.returncode == 2 and "--input_tag_scheme=iob1" in refused.stderr


def test_validate_wnut17():
    path = DATA / "wnut17" / "train.conll"
    if not path.exists():
        pytest.skip(f"WNUT-17 not found at {path}")
    result = run_data("validate", path)
    assert (result.returncode, result.stdout) == (0, "OK: 3,394 sentences, 1,975 entities\n")
