"""The stages stand alone: no stage imports another, and the library imports no stage (docs/DESIGN.md, "The shape").

Read statically and transitively (imports inside functions count), with the same import reader that fingerprints a
run's code, so a stage that reached into another through a helper module is caught too.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.sweep.code import closure

REPO = Path(__file__).resolve().parents[1]
PIPELINE = REPO / "pipeline"
STAGES = ("encode", "train", "evaluate", "sweep", "report")  # the packages behind the stages and CLI commands
# what the stages share
LIBRARY = ("backbone", "data", "engine", "head_params", "heads", "presets", "prompts", "scoring", "store",
           "cores", "digest", "errors", "evaluate_params", "grid", "head_names", "layout", "params", "runlog",
           "strict_yaml", "transductive_params", "typed")


def module_name(path: Path) -> str:
    """pipeline/heads/base.py -> pipeline.heads.base; pipeline/heads/__init__.py -> pipeline.heads."""
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules_of(package: str) -> list[str]:
    """Every module of pipeline/<package> (a package folder or a single module)."""
    folder = PIPELINE / package
    files = sorted(folder.rglob("*.py")) if folder.is_dir() else [folder.with_suffix(".py")]
    return [module_name(p) for p in files]


def stage_of(path: Path) -> str | None:
    """The stage a source file belongs to, or None for the library and the CLI."""
    parts = path.relative_to(PIPELINE).parts
    return parts[0] if len(parts) > 1 and parts[0] in STAGES else None


def reached(module: str) -> set[str]:
    """The stages whose files `module` imports, transitively."""
    return {stage for path in closure(module) if (stage := stage_of(path)) is not None}


def test_every_package_is_named_as_a_stage_or_the_library() -> None:
    found = {p.name for p in PIPELINE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    found |= {p.stem for p in PIPELINE.glob("*.py") if p.stem not in ("__init__", "cli", "cli_files")}
    assert found == set(STAGES) | set(LIBRARY)


@pytest.mark.parametrize("stage", STAGES)
def test_no_stage_imports_another(stage: str) -> None:
    for module in modules_of(stage):
        assert reached(module) <= {stage}, f"{module} imports stage(s) {sorted(reached(module) - {stage})}"


@pytest.mark.parametrize("package", LIBRARY)
def test_the_library_imports_no_stage(package: str) -> None:
    for module in modules_of(package):
        assert not reached(module), f"{module} imports stage(s) {sorted(reached(module))}"


def test_the_check_sees_an_import_inside_a_function(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reader the tests above rely on finds a stage imported lazily, deep in a library module."""
    from pipeline.sweep import code

    fake = tmp_path / "pipeline"
    for source in PIPELINE.rglob("*.py"):
        target = fake / source.relative_to(PIPELINE)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    maths = fake / "heads" / "maths.py"
    maths.write_text(maths.read_text(encoding="utf-8") + "\n\ndef late() -> None:\n"
                     "    from pipeline.train.entry import train_from_params  # noqa: F401\n", encoding="utf-8")
    monkeypatch.setattr(code, "ROOT", fake)
    code.closure.cache_clear()
    code.lazy_exports.cache_clear()
    try:
        stages = {p.relative_to(fake).parts[0] for p in code.closure("pipeline.heads.lp_pp")
                  if p.relative_to(fake).parts[0] in STAGES}
    finally:
        code.closure.cache_clear()
        code.lazy_exports.cache_clear()
    assert stages == {"train"}
