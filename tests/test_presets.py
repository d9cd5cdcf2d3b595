"""Paper presets: listed, applied to a params.yaml by `clipcache preset`, and the result loads as a grid whose
heads carry the paper's parameters."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.cli import main
from pipeline.grid import grid_pairs
from pipeline.heads.registry import create_head, list_heads
from pipeline.presets import list_presets, load_preset
from pipeline.presets.apply import apply_preset

REPO = Path(__file__).resolve().parents[1]
PAPERS = ["ape", "cavpt", "clap", "clip_adapter", "clip_lora", "cocoop", "cocoop_dg", "cocoop_xd", "coop",
          "coop_openclip", "gda", "gda_b2n", "kgcoop", "lp_pp", "maple", "maple_dg", "maple_xd", "mm_adapter",
          "prograd", "proker", "prolip", "promptsrc", "promptsrc_dg", "promptsrc_xd", "taskres", "tip_adapter",
          "transclip", "vt_clip"]


def test_every_paper_has_a_preset_and_each_names_known_heads_and_data_sets() -> None:
    from pipeline.data.registry import list_datasets

    assert list_presets() == PAPERS
    for name in PAPERS:
        preset = load_preset(name)
        assert set(preset.heads) <= set(list_heads()) and set(preset.datasets) <= set(list_datasets())
        for head, params in preset.heads.items():
            create_head(head, params)  # every fixed parameter is one the head knows, of the right type


@pytest.mark.parametrize("name", ["tip_adapter", "cavpt", "mm_adapter", "clap"])
def test_a_preset_applied_is_the_papers_grid_and_keeps_runtime(name: str, tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text((REPO / "params.yaml").read_text())
    assert main(["preset", name, "--data-root", "/data", "--params", str(params), "--unchecked"]) == 0
    written = yaml.safe_load(params.read_text())
    preset = load_preset(name)
    pairs = grid_pairs(written)
    assert sorted({p.dataset.name for p in pairs}) == sorted(preset.datasets)
    assert {(p.model.name, p.model.pretrained) for p in pairs} == {(m["name"], m["pretrained"]) for m in preset.models}
    from pipeline.data.coop import COOP_FOLDERS

    assert all(p.dataset.root == f"/data/{COOP_FOLDERS[p.dataset.name]}" for p in pairs)  # caltech-101, food-101...
    assert pairs[0].protocol.shots == tuple(preset.encode["protocol"]["shots"])
    assert written["train"]["heads"] == list(preset.heads) and written["heads"] == preset.heads
    assert written["train"]["protocol"] == ("base_to_novel" if name == "mm_adapter" else "all")
    assert written["runtime"] == yaml.safe_load((REPO / "params.yaml").read_text())["runtime"]
    assert params.read_text().startswith(f"# the {name} preset")


@pytest.mark.parametrize("name", ["cocoop_dg", "maple_xd"])
def test_a_transfer_preset_fits_on_imagenet_and_scores_the_others_and_a_later_preset_drops_it(name: str,
                                                                                              tmp_path: Path) -> None:
    from pipeline.grid import transfer_plan
    from pipeline.params import train_params

    params = tmp_path / "params.yaml"
    params.write_text((REPO / "params.yaml").read_text())
    assert main(["preset", name, "--data-root", "/data", "--params", str(params), "--unchecked"]) == 0
    written = yaml.safe_load(params.read_text())
    train = train_params(written["train"])
    assert train.protocol == ("domain_generalisation" if name.endswith("_dg") else "cross_dataset")
    plan = transfer_plan(written, grid_pairs(written), train.transfer)
    assert [(source.dataset.name, [t.dataset.name for t in targets]) for source, targets in plan] == [
        ("imagenet", list(load_preset(name).datasets[1:]))]
    if name == "cocoop_dg":
        assert {p.dataset.root for p in grid_pairs(written)} == {
            "/data/imagenet", "/data/imagenetv2", "/data/imagenet-sketch", "/data/imagenet-adversarial",
            "/data/imagenet-rendition"}
    assert main(["preset", "coop", "--data-root", "/data", "--params", str(params), "--unchecked"]) == 0
    written = yaml.safe_load(params.read_text())
    assert written["train"]["transfer"] == {"source": "", "targets": []} and written["train"]["protocol"] == "all"


def test_a_slice_of_the_data_sets_and_unknown_names_are_refused(tmp_path: Path, capsys) -> None:
    params = {"encode": {"cache_dir": "cache"}, "runtime": {"device": "cpu"}}
    one = apply_preset(params, load_preset("gda"), "/d", ["dtd"])
    assert [d["name"] for d in one["grid"]["datasets"]] == ["dtd"] and one["encode"]["cache_dir"] == "cache"
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    assert main(["preset", "nope", "--data-root", "/d", "--params", str(path)]) == 1
    assert "unknown preset 'nope'; known: ape, cavpt" in capsys.readouterr().err
    assert main(["preset", "gda", "--data-root", "/d", "--params", str(path), "--dataset", "textile"]) == 1
    assert "preset 'gda' has no data set 'textile'" in capsys.readouterr().err
    assert yaml.safe_load(path.read_text()) == params  # nothing written on refusal


def test_missing_data_set_folders_are_all_named_before_anything_is_written(tmp_path: Path, capsys) -> None:
    from pipeline.data.coop import COOP_FOLDERS

    path = tmp_path / "params.yaml"
    path.write_text((REPO / "params.yaml").read_text())
    before = path.read_text()
    root = tmp_path / "DATA"
    (root / COOP_FOLDERS["dtd"]).mkdir(parents=True)
    assert main(["preset", "gda", "--data-root", str(root), "--params", str(path)]) == 1
    err = capsys.readouterr().err
    assert "preset 'gda': 10 of 11 data set folder(s) missing under" in err and err.count("\n") == 1
    for name in load_preset("gda").datasets:
        assert (f"{name} (" in err) == (name != "dtd"), name
    assert "pass --dataset for each of the 1 present" in err and path.read_text() == before
    assert main(["preset", "gda", "--data-root", str(root), "--params", str(path), "--dataset", "dtd"]) == 0
    assert [d["name"] for d in yaml.safe_load(path.read_text())["grid"]["datasets"]] == ["dtd"]


def test_presets_lists_every_protocol(capsys) -> None:
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    assert all(f"{name}: " in out for name in PAPERS) and "RN50 (openai); shots [1, 2, 4, 8, 16] x seeds [1]" in out


def test_a_transductive_papers_preset_writes_its_section_and_inductive_ones_clear_it(tmp_path: Path) -> None:
    from pipeline.params import load_params
    from pipeline.transductive_params import transductive_params

    params = tmp_path / "params.yaml"
    params.write_text((REPO / "params.yaml").read_text())
    assert main(["preset", "transclip", "--data-root", "/data", "--params", str(params), "--unchecked"]) == 0
    section = transductive_params(load_params(params).get("transductive"))
    assert section.heads == ("zero_shot",) and section.transclip.support is False
    assert set(section.heads) <= set(load_preset("transclip").heads)
    assert main(["preset", "taskres", "--data-root", "/data", "--params", str(params), "--unchecked"]) == 0
    assert transductive_params(load_params(params).get("transductive")).heads == ()
