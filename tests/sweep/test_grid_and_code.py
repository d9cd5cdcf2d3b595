"""The grid of params.yaml, and the code closure that a run's fingerprint hashes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.errors import ClipCacheError
from pipeline.grid import check_pairs, grid_pairs, one_pair
from pipeline.sweep.code import closure, data_closure, imported_modules
from pipeline.sweep.fingerprint import RUN_MODULE

DATASETS = [{"name": "textile", "options": {"max_per_class": 20}}, {"name": "dtd", "root": "/data/dtd"}]
MODELS = [{"name": "ViT-B-32", "pretrained": "openai"}, {"name": "RN50", "pretrained": "none"}]


def test_grid_is_data_sets_times_models_sharing_the_protocol() -> None:
    params = {"grid": {"datasets": DATASETS, "models": MODELS}, "encode": {"protocol": {"shots": [1, 2], "seeds": [3]}}}
    pairs = grid_pairs(params)
    assert [(p.dataset.name, p.model.name, p.model.pretrained) for p in pairs] == [
        ("textile", "ViT-B-32", "openai"), ("textile", "RN50", "none"), ("dtd", "ViT-B-32", "openai"),
        ("dtd", "RN50", "none")]
    assert all(p.protocol.shots == (1, 2) and p.protocol.seeds == (3,) for p in pairs)
    assert pairs[2].dataset.root == "/data/dtd" and pairs[0].dataset.options == {"max_per_class": 20}
    assert [p.model.name for p in grid_pairs(params, dataset="dtd", model="RN50__none")] == ["RN50"]
    assert [p.dataset.name for p in grid_pairs(params, model="ViT-B-32")] == ["textile", "dtd"]
    with pytest.raises(ClipCacheError, match=r"2 .*pairs.*--dataset and --model"):
        one_pair(params, dataset="dtd")
    with pytest.raises(ClipCacheError, match=r"--dataset food101: no such data set in the grid; it has: dtd, textile"):
        grid_pairs(params, dataset="food101")
    three = {**params, "grid": {"datasets": [*DATASETS, {"name": "eurosat", "root": "/data/eurosat"}],
                                "models": MODELS[:1]}}
    assert [p.dataset.name for p in grid_pairs(three, dataset=["dtd", "eurosat"])] == ["dtd", "eurosat"]
    with pytest.raises(ClipCacheError, match=r"--dataset food101, ucf101: no such data set"):
        grid_pairs(three, dataset=["dtd", "ucf101", "food101"])
    with pytest.raises(ClipCacheError, match=r"no \(data set, model\) pair of the grid matches"):
        grid_pairs(three, dataset=["dtd"], model="RN50")


def test_without_a_grid_the_encode_section_is_the_one_pair() -> None:
    pair = one_pair({"encode": {"dataset": DATASETS[1], "model": MODELS[1]}})
    assert (pair.dataset.name, pair.model.name) == ("dtd", "RN50")


def test_a_data_set_may_carry_its_own_protocol_over_the_shared_one() -> None:
    """A small data set of its own runs 1-4 shots while the others keep the grid's 1-16; its sweep plans those."""
    from pipeline.sweep.plan import plan_runs

    own = {**DATASETS[1], "protocol": {"shots": [1, 4]}}
    params = {"grid": {"datasets": [DATASETS[0], own], "models": MODELS[:1]},
              "encode": {"protocol": {"shots": [1, 16], "seeds": [1, 2], "val": "full"}}}
    textile, dtd = grid_pairs(params)
    assert (textile.protocol.shots, dtd.protocol.shots) == ((1, 16), (1, 4))
    assert dtd.protocol.seeds == (1, 2) and dtd.protocol.val == "full"  # the rest of the shared protocol
    assert dtd.dataset.name == "dtd" and dtd.dataset.root == "/data/dtd"
    specs = plan_runs([textile, dtd], ["zero_shot"], {}, "results")
    assert sorted({(s.encode.dataset.name, s.shots) for s in specs}) == [("dtd", 1), ("dtd", 4), ("textile", 1),
                                                                         ("textile", 16)]
    with pytest.raises(ClipCacheError, match=r"grid\.datasets\[1\] \(dtd\): protocol must be a mapping"):
        grid_pairs({**params, "grid": {"datasets": [DATASETS[0], {**own, "protocol": [1, 4]}], "models": MODELS}})
    with pytest.raises(ClipCacheError, match=r"unknown key encode\.protocol\.shot\b"):
        grid_pairs({**params, "grid": {"datasets": [{**own, "protocol": {"shot": [1]}}], "models": MODELS}})


@pytest.mark.parametrize(("grid", "culprit"), [
    ({"datasets": DATASETS, "models": []}, "grid.models must be a non-empty list"),
    ({"datasets": [DATASETS[0], DATASETS[0]], "models": MODELS}, "names 'textile' twice"),
    ({"datasets": DATASETS, "models": MODELS, "heads": []}, "keys datasets and models"),
    ({"datasets": [{"name": "textile", "colour": 1}], "models": MODELS}, r"unknown key encode\.dataset\.colour"),
])
def test_bad_grids_are_named(grid: dict, culprit: str) -> None:
    with pytest.raises(ClipCacheError, match=culprit):
        grid_pairs({"grid": grid, "encode": {}})
    with pytest.raises(ClipCacheError, match=r"encode\.dataset and grid"):
        grid_pairs({"grid": {"datasets": DATASETS, "models": MODELS}, "encode": {"dataset": DATASETS[0]}})


def names(paths: tuple[Path, ...]) -> set[str]:
    return {str(p).split("pipeline/", 1)[1] for p in paths}


def test_a_heads_code_closure_holds_its_own_imports_and_no_other_heads() -> None:
    zero_shot, coop = names(closure("pipeline.heads.zero_shot")), names(closure("pipeline.heads.coop"))
    assert {"heads/zero_shot.py", "heads/base.py", "heads/inputs.py"} <= zero_shot
    # heads read splits through heads.inputs.SplitReader; the cache reader is in every run's code through the run module
    assert "store/reader.py" in names(closure(RUN_MODULE))
    assert not {"heads/gda.py", "heads/coop.py", "prompts/text.py", "heads/loop.py"} & zero_shot
    assert {"heads/coop.py", "prompts/text.py", "backbone/frozen.py", "backbone/model.py", "heads/loop.py"} <= coop
    assert "heads/tip_adapter.py" in names(closure("pipeline.heads.tip_adapter_f"))  # it subclasses Tip-Adapter
    # a name imported from a lazy package counts as the module its _EXPORTS table names
    assert {"backbone/image.py", "backbone/text.py"} <= names(closure("pipeline.encode.run"))


def test_a_runs_fingerprint_covers_the_data_files_its_code_reads() -> None:
    """The authors' per-data-set values and the template sets are data: editing them must re-fit the runs."""
    proker = names(data_closure("pipeline.heads.proker"))
    assert {"heads/resources/per_dataset.json", "data/resources/templates.json", "heads/proker.py"} <= proker
    assert not any("resources" in n for n in names(closure("pipeline.heads.proker")))


def test_relative_and_lazy_imports_are_resolved(tmp_path: Path) -> None:
    source = tmp_path / "mod.py"
    source.write_text("from . import maths\nfrom .inputs import FitData\nfrom pipeline.backbone import encode_classes\n"
                      "def f():\n    import pipeline.store.atomic\n")
    found = imported_modules(source, "pipeline.heads.mod")
    assert {"pipeline.heads.maths", "pipeline.heads.inputs", "pipeline.backbone.text", "pipeline.store.atomic",
            "pipeline.store", "pipeline"} <= found
    assert not any(m.startswith(("torch", "numpy")) for m in found)
    package = tmp_path / "__init__.py"  # in a package's __init__, `.` is the package itself, not its parent
    package.write_text("from .maths import normalize\nfrom . import loop\n")
    assert {"pipeline.heads.maths", "pipeline.heads.loop"} <= imported_modules(package, "pipeline.heads")
    assert "pipeline.maths" not in imported_modules(package, "pipeline.heads")


def test_a_head_imports_only_its_own_dependencies() -> None:
    code = ("import sys\nfrom pipeline.heads import create_head\ncreate_head('zero_shot')\n"
            "print(sorted(m for m in ('open_clip', 'transformers', 'timm', 'pipeline.heads.gda') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_runtime_section_has_one_reader_per_key() -> None:
    from pipeline.engine import CLUSTER_KEYS, cluster_params
    from pipeline.params import ENGINE_KEYS, runtime_params, runtime_section

    assert ENGINE_KEYS == CLUSTER_KEYS
    section = runtime_section({"runtime": {"device": "cpu", "cluster": "local:2", "batch_size": 8}},
                              {"device": None, "cluster": "none", "workers": 3})
    assert section == {"device": "cpu", "cluster": "none", "batch_size": 8, "workers": 3}
    assert (runtime_params(section).device, runtime_params(section).workers) == ("cpu", 3)
    assert cluster_params({k: v for k, v in section.items() if k in CLUSTER_KEYS}).cluster == "none"
    with pytest.raises(ClipCacheError, match=r"unknown key runtime\.clustr"):
        runtime_params({"clustr": "local:2"})



def test_a_cache_files_fingerprint_is_read_once_while_the_file_is_unchanged(two_seed_cache, monkeypatch) -> None:
    """A sweep plans hundreds of runs over a few dozen files: each file is opened (and its provenance checked) once
    per process, and again only once the file changes."""
    import pipeline.sweep.fingerprint as fp
    from pipeline.encode.plan import cache_folder
    from pipeline.params import encode_params
    from pipeline.store import FeatureSplit
    from pipeline.store.provenance import fingerprint

    opened: list[Path] = []

    def counting(path: Path) -> FeatureSplit:
        opened.append(path)
        return FeatureSplit(path)

    monkeypatch.setattr(fp, "FeatureSplit", counting)
    monkeypatch.setattr(fp, "_SEEN", {})
    path = cache_folder(encode_params(two_seed_cache)) / "k1-s1" / "val.h5"
    first = fp.file_fingerprint(path)
    assert fp.file_fingerprint(path) == first and opened == [path]
    assert first == fingerprint(FeatureSplit(path).provenance)
    stamp = path.stat()
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 1000))  # "changed": opened again
    try:
        assert fp.file_fingerprint(path) == first and opened == [path, path]
    finally:
        os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))


def test_a_root_that_names_shards_says_where_the_pattern_goes(tmp_path: Path) -> None:
    """The issue's `root: .../shards-{000..009}.tar`: the root is the folder DVC tracks, the pattern an option."""
    pattern = f"{tmp_path}/shards-{{000..009}}.tar"
    params = {"grid": {"datasets": [{"name": "parts", "layout": "webdataset", "root": pattern},
                                    {"name": "rows", "layout": "parquet", "root": str(tmp_path / "a.parquet")},
                                    {"name": "plain", "layout": "image_folder", "root": str(tmp_path / "none")}],
                       "models": [{"name": "ViT-B-32"}]}}
    with pytest.raises(ClipCacheError) as error:
        check_pairs(grid_pairs(params))
    message = str(error.value)
    assert f"root: {str(tmp_path)!r}, options: {{files: 'shards-{{000..009}}.tar'}}" in message
    assert "options: {files: 'a.parquet'}" in message
    assert message.endswith(f"data set root {str(tmp_path / 'none')!r} of 'plain' is not a folder")
