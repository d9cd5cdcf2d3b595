"""dvc.yaml's code deps are exactly what each stage imports: nothing missing (a change would go unnoticed), nothing
extra (a change would re-run a stage for nothing). Imports are read statically, transitively, inside functions too."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.heads.registry import MODULES
from pipeline.sweep.code import closure, imported_modules

REPO = Path(__file__).resolve().parents[1]
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def stage_imports(script: Path, extra: tuple[str, ...] = ()) -> set[str]:
    """Repository-relative .py files the stage script imports, transitively, plus the script itself."""
    files = {script}
    for module in sorted(imported_modules(script, "stages") | set(extra)):
        files |= set(closure(module))
    return {str(p.relative_to(REPO)) for p in files}


def dep_files(deps: list[str], item: str = "") -> set[str]:
    """The .py files the deps name (directories expanded), with ${item} substituted."""
    out: set[str] = set()
    for dep in deps:
        path = REPO / dep.replace("${item}", item)
        if path.is_dir():
            out |= {str(p.relative_to(REPO)) for p in path.rglob("*.py")}
        elif path.suffix == ".py":
            out.add(str(path.relative_to(REPO)))
    return out


def script_of(stage: dict) -> Path:
    return REPO / stage["cmd"].split()[1]


@pytest.mark.parametrize("name", ["textile", "report"])
def test_single_stages_list_what_they_import(name: str) -> None:
    stage = STAGES[name]
    assert dep_files(stage["deps"]) == stage_imports(script_of(stage))


def test_encode_lists_what_it_imports_and_the_data_sets_files() -> None:
    stage = STAGES["encode"]["do"]
    assert dep_files(stage["deps"]) == stage_imports(script_of(stage))
    assert "${item.root}" in stage["deps"], "the data set's own files are a dependency of encode"


def test_sweep_lists_what_any_head_imports_and_each_head_its_own_module() -> None:
    stage = STAGES["sweep"]["do"]
    needed = {name: stage_imports(script_of(stage), (module,)) for name, module in MODULES.items()}
    for name in MODULES:
        assert needed[name] <= dep_files(stage["deps"], name), f"sweep@{name} misses deps"
    shared = dep_files([d for d in stage["deps"] if "${item}" not in d])
    assert shared <= set().union(*needed.values()), f"deps nothing imports: {shared - set().union(*needed.values())}"
    head_files = {f"pipeline/heads/{name}.py" for name in MODULES}
    assert shared & head_files == {"pipeline/heads/ape.py", "pipeline/heads/clap.py", "pipeline/heads/coop.py",
                                   "pipeline/heads/ivlp.py",
                                   "pipeline/heads/tip_adapter.py",
                                   "pipeline/heads/vpt_late.py"}
