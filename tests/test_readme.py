"""README's Quick start holds the two commands, and .ci/run runs the second one verbatim."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def quick_start_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line and not line.startswith("#")]


def test_two_commands_and_ci_runs_the_test_one() -> None:
    main_job, tests = quick_start_commands()
    assert "pip install" in main_job and "dvc repro" in main_job
    assert "pip install" in tests and "pytest" in tests
    assert tests in (REPO / ".ci" / "run").read_text()


def test_dvc_stages_track_their_sections_and_never_runtime() -> None:
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    encode, sweep = stages["encode"], stages["sweep"]
    assert encode["foreach"] == "${grid.datasets}" and sorted(encode["do"]["params"]) == ["encode", "grid"]
    assert sweep["foreach"] == "${train.heads}" and sorted(sweep["do"]["params"]) == [
        "encode", "grid", "heads.${item}", "train.protocol", "train.transfer", "transductive"]  # what a run depends on
    for stage in (encode["do"], sweep["do"]):
        assert next(iter(stage["outs"][0].values()))["persist"] is True
    assert not [s for s in (encode["do"], sweep["do"], stages["report"]) if any("runtime" in p for p in s["params"])]
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    assert {"grid", "encode", "runtime", "heads", "train"} <= set(params)
    assert set(params["train"]["heads"]) == set(params["heads"])  # every head of the demo has its parameters
    assert {"protocol", "transfer"} <= set(params["train"])  # tracked by the sweep stages, so they must exist


def test_dvc_plots_draw_every_registered_head() -> None:
    from pipeline.heads import list_heads

    plot = yaml.safe_load((REPO / "dvc.yaml").read_text())["plots"][0]["accuracy_vs_shots"]
    assert sorted(plot["y"]) == [f"${{evaluate.report_dir}}/curves/{h}.csv" for h in list_heads()]
    assert set(plot["y"].values()) == {"top1"} and plot["x"] == "shots"


def test_every_override_of_the_ablation_recipe_names_a_key_params_yaml_holds() -> None:
    """`dvc exp run -S a.b.c=v` fails for a key the file lacks (it wants `+a.b.c`): the recipe's keys must exist."""
    readme = (REPO / "README.md").read_text()
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    keys = re.findall(r"-S '?([a-z_.]+)=", readme)
    assert "heads.vt_clip.n_heads" in keys and "encode.protocol.shots" in keys
    for key in keys:
        node = params
        for part in key.split("."):
            assert isinstance(node, dict) and part in node, f"README overrides {key}, which params.yaml lacks"
            node = node[part]
