import pytest

from kner.data.raw_text import expand_paths, layout_paths, read_documents, read_lines
from kner.errors import InputError


def write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


def test_expand_paths_keeps_order_and_sorts_each_glob(tmp_path):
    for name in ("b.txt", "a.txt", "c.dat"):
        write(tmp_path / name, "x\n")
    spec = f"{tmp_path / 'c.dat'}, {tmp_path / '*.txt'}"
    assert expand_paths(spec) == [tmp_path / "c.dat", tmp_path / "a.txt", tmp_path / "b.txt"]
    with pytest.raises(InputError, match="no file matches"):
        expand_paths(str(tmp_path / "*.json"))
    with pytest.raises(InputError, match="no files given"):
        expand_paths(" , ")


def test_line_layout_skips_blank_lines_and_numbers_lines(tmp_path):
    path = write(tmp_path / "t.txt", "第一篇。\n\n  第二篇。 \r\n")
    assert list(read_lines([path])) == [("第一篇。", str(path), 1), ("第二篇。", str(path), 3)]
    assert [d.sentences for d in read_documents([path])] == [["第一篇。"], ["第二篇。"]]


def test_google_layout_splits_documents_at_blank_lines(tmp_path):
    path = write(tmp_path / "t.txt", "一。\n二。\n\n\n三。\n")
    documents = list(read_documents([path], layout="google"))
    assert [(d.sentences, d.line) for d in documents] == [(["一。", "二。"], 1), (["三。"], 5)]


def test_bad_bytes_name_the_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes("好\n".encode() + b"\xff\n")
    with pytest.raises(InputError, match=r"bad.txt:2: not valid UTF-8"):
        list(read_lines([path]))


def test_label_tab_layout_drops_the_label_column(tmp_path):
    path = write(tmp_path / "r.txt", "1\t好书。\n\n0\t 一般 \n")
    assert [d.sentences for d in read_documents([path], layout="label_tab")] == [["好书。"], ["一般"]]
    bad = write(tmp_path / "bad.txt", "1\t好\n没有标签\n")
    with pytest.raises(InputError, match=r"bad.txt:2: no label<TAB>text column"):
        list(read_documents([bad], layout="label_tab"))


def test_layout_paths_take_a_per_file_layout_prefix(tmp_path):
    a, b = write(tmp_path / "a.txt", "x\n"), write(tmp_path / "b.txt", "1\tx\n")
    assert layout_paths(f"{a},label_tab:{b}", "line") == [("line", a), ("label_tab", b)]
    with pytest.raises(InputError, match="unknown layout 'tsv'"):
        layout_paths(f"tsv:{b}", "line")


def test_invalid_utf8_is_an_error_or_replaced_when_lenient(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes("一。\n".encode() + b"\xe4\xb8 \xff\n")
    with pytest.raises(InputError, match=r"t.txt:2: not valid UTF-8 at column 1 \(byte 0xe4\)"):
        list(read_lines([path]))
    assert [d.sentences for d in read_documents([path], "google", lenient=True)] == [["一。", "\ufffd \ufffd"]]
