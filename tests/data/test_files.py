import os

import pytest

from kner.data.files import atomic_output, check_text, check_writable, numbered_lines, write_text
from kner.errors import InputError


def test_numbered_lines_names_line_column_and_cause(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes("一\n二三".encode() + b"\xed\xa0\xbd\n")
    with pytest.raises(InputError) as caught:
        list(numbered_lines(path))
    assert caught.value.line == 2
    assert "column 3 (byte 0xed): an encoded surrogate" in caught.value.message
    assert "broken \\u escape" in caught.value.message and "--lenient" in caught.value.message
    assert list(numbered_lines(path, lenient=True)) == [(1, "一"), (2, "二三\ufffd")]


def test_check_text():
    assert check_text("王小二", "f", 1) == ("王小二", 0)
    with pytest.raises(InputError, match=r"^f:7: text character 2 is a lone surrogate U\+DE00"):
        check_text("ab\ude00c", "f", 7)
    assert check_text("a\ud83db\ude00", "f", 7, lenient=True) == ("a\ufffdb\ufffd", 2)
    with pytest.raises(InputError, match="lone surrogate") as caught:
        check_text("\ud83d", "f", 7, lenient=True, repairable=False)
    assert "--lenient" not in str(caught.value)


def test_check_writable(tmp_path):
    check_writable(tmp_path / "out.json")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match="does not exist"):
        check_writable(tmp_path / "missing" / "out.json")
    with pytest.raises(InputError, match="is a directory"):
        check_writable(tmp_path)
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(InputError, match="cannot write: permission denied"):
            check_writable(locked / "out.json")


def test_atomic_output_renames_at_the_end_or_leaves_nothing(tmp_path):
    target = tmp_path / "out.txt"
    with atomic_output(target) as out:
        out.write("第一行\n")
        assert not target.exists()  # nothing visible until the end
    assert target.read_text(encoding="utf-8") == "第一行\n"
    with pytest.raises(UnicodeEncodeError), atomic_output(target) as out:
        out.write("ok\n")
        out.write("\ud83d\n")
    assert target.read_text(encoding="utf-8") == "第一行\n"
    write_text(tmp_path / "new.txt", "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.txt", "out.txt"]
    assert oct((tmp_path / "new.txt").stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
