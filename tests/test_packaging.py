"""`pip install .` gives the `kner` package alone, importable from anywhere,
with the dependencies that requirements*.txt pin."""

import importlib.util
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
REPO = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def pins(name: str) -> list[str]:
    """The `package==version` lines of a requirements file, without its `-r` includes."""
    lines = (REPO / name).read_text().splitlines()
    return [line.strip() for line in lines if re.match(r"^[A-Za-z0-9_.-]+==", line.strip())]


@pytest.mark.parametrize(
    "declared, requirements",
    [
        (PROJECT["dependencies"], "requirements.txt"),
        (PROJECT["optional-dependencies"]["dev"], "requirements-dev.txt"),
        (PROJECT["optional-dependencies"]["bench"], "requirements-bench.txt"),
    ],
)
def test_declared_dependencies_are_the_pinned_requirements(declared, requirements):
    assert sorted(declared) == sorted(pins(requirements))


@pytest.mark.slow
def test_wheel_holds_kner_alone_and_imports_from_anywhere(tmp_path):
    source = tmp_path / "source"  # a copy, so that the build writes nothing into the checkout
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".*", "runs", "build", "*.egg-info", "__pycache__"))
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), str(source)]
    if importlib.util.find_spec("setuptools"):  # build offline with the installed setuptools
        command.insert(4, "--no-build-isolation")
    built = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = tmp_path.glob("kner-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {"kner", f"kner-{PROJECT['version']}.dist-info"}
    sources = {str(p.relative_to(REPO)) for p in (REPO / "kner").rglob("*.py")}
    assert sources <= set(names)  # every subpackage and module
    assets = {str(p.relative_to(REPO)) for p in (REPO / "kner" / "assets").iterdir()}
    assert assets and assets <= set(names)  # the error report's page, style and script

    site = tmp_path / "site"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(site), str(wheel)],
        capture_output=True,
        text=True,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    # From a directory with no kner in it, the installed copy is the one imported.
    script = "import kner, kner.data.corpus, kner.cli; print(kner.__file__)"
    env = {"PYTHONPATH": str(site), "PATH": ""}
    imported = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert imported.returncode == 0, imported.stderr[-3000:]
    assert imported.stdout.strip() == str(site / "kner" / "__init__.py")
