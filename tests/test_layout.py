"""The folders are the pipeline and imports run one way through them:
data → backbones → models → serving → training → the `python -m kner.X`
entry points. This reads every module's imports (top-level and inside
functions) and fails on one that runs upward."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "kner"
# Each stage, with the stages it may import from. Shared leaves, which may import
# only data and each other: errors and metrics (every stage reports and scores),
# the error report (the trainer writes it for its best evaluation, the
# `kner.report` CLI for any predictions file) and TensorFlow's start-up notices
# (the CLIs and the Python API hide them).
STAGES = ["data", "backbones", "models", "serving", "training"]
SHARED = {"kner.errors", "kner.metrics", "kner.error_kinds", "kner.error_report", "kner.startup_noise"}
ENTRY_POINTS = {
    "kner.train",
    "kner.distill",
    "kner.export",
    "kner.predict",
    "kner.checkpoint",
    "kner.pretrain",
    "kner.report",
    "kner.data.__main__",
}
# The command lines and what only they share (flag groups, start-up).
CLI_LAYER = ENTRY_POINTS | {"kner.cli"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_kner_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("kner"):
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names if alias.name.startswith("kner"))
    return names


def stage(name: str) -> int | None:
    """Rank of the stage a module belongs to; None for shared leaves and the top."""
    parts = name.split(".")
    if len(parts) > 1 and parts[1] in STAGES:
        return STAGES.index(parts[1])
    return None


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_is_in_a_stage_or_named_at_the_top():
    top = {module_name(p) for p in MODULES if stage(module_name(p)) is None}
    assert top <= {"kner"} | SHARED | CLI_LAYER, f"modules outside the stage folders: {sorted(top)}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_run_one_way(path):
    name = module_name(path)
    here = stage(name)
    for imported in imported_kner_modules(path):
        if name in CLI_LAYER or name == "kner":
            assert imported not in ENTRY_POINTS, f"{name} imports the entry point {imported}"
            continue
        assert imported not in CLI_LAYER, f"library module {name} imports {imported}"
        there = stage(imported)
        if name in SHARED:
            assert there is None or there == 0, f"shared {name} imports {imported}: only data may be below it"
            continue
        if here is not None and there is not None:
            assert there <= here, f"{name} ({STAGES[here]}) imports {imported} ({STAGES[there]}), upward"


def test_the_check_catches_an_upward_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from kner.training.trainer import Trainer\n")
    assert "kner.training.trainer" in imported_kner_modules(bad)
    assert stage("kner.training.trainer") > stage("kner.data.corpus")
