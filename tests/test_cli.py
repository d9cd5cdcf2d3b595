"""The CLI: one-line errors that name the culprit, exit code 1, and no loss of what was already written."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.store import FeatureSplit
from tests.helpers import encode_section, make_folder, make_image, write_params


@pytest.fixture()
def small(tmp_path: Path) -> tuple[Path, Path]:
    """(image root, cache dir) with 3 classes x 10 images (5 train, 2 val, 3 test each)."""
    return make_folder(tmp_path / "img", ["a", "b", "c"], 10), tmp_path / "cache"


def run(args: list[str], capsys) -> tuple[int, str]:
    code = main(args)
    return code, capsys.readouterr().err


@pytest.mark.parametrize(("change", "culprit"), [
    ({"dataset__name": "nope"}, "unknown data set 'nope'"),
    ({"dataset__root": "/no/such/root"}, "/no/such/root"),
    ({"model__name": "ViT-Q-99"}, "unknown open_clip model 'ViT-Q-99'"),
    ({"model__pretrained": "laion9000"}, "unknown pretrained tag 'laion9000'"),
    ({"model__pretrained": "/no/weights.pt"}, "/no/weights.pt"),
    ({"protocol__shots": [50]}, "class 'a' has 5 image.*50"),
    ({"features__spatial_dtype": "int8"}, "spatial_dtype"),
    ({"templates": ["tip7", "mine"]}, "'mine'"),
])
def test_bad_requests_are_one_line_errors(small, tmp_path: Path, capsys, change, culprit) -> None:
    root, cache = small
    params = write_params(tmp_path / "params.yaml", encode_section(root, "vit", cache, **change))
    code, err = run(["encode", "--params", str(params)], capsys)
    assert code == 1 and err.count("\n") == 1 and err.startswith("clipcache: error:")
    assert __import__("re").search(culprit, err), err
    assert not cache.exists() or not list(cache.rglob("*.h5")), "a refused request writes nothing"


def test_unknown_params_key_and_bad_override(small, tmp_path: Path, capsys) -> None:
    root, cache = small
    section = encode_section(root, "vit", cache)
    section["views"]["cont"] = 3
    code, err = run(["encode", "--params", str(write_params(tmp_path / "p.yaml", section))], capsys)
    assert code == 1 and "encode.views.cont" in err
    code, err = run(["encode", "--params", str(tmp_path / "p.yaml"), "--set", "novalue"], capsys)
    assert code == 1 and "novalue" in err
    code, err = run(["encode", "--params", str(tmp_path / "absent.yaml")], capsys)
    assert code == 1 and "absent.yaml" in err


def test_corrupt_image_stops_naming_it_keeps_written_shards_then_skips(small, tmp_path: Path, capsys) -> None:
    root, cache = small
    params = write_params(tmp_path / "params.yaml", encode_section(root, "vit", cache),
                          {"workers": 0, "batch_size": 1, "shard_images": 1})  # the bad image's shard ends empty
    assert main(["encode", "--params", str(params)]) == 0
    test = FeatureSplit(next(cache.rglob("test.h5")))
    bad = root / test.image_ids[-1]
    bad.write_bytes(b"this is not a jpeg")
    params.write_text(params.read_text().replace("spatial_dtype: float32", "spatial_dtype: float16"))
    code, err = run(["encode", "--params", str(params)], capsys)
    assert code == 1 and str(bad) in err and "--skip-bad-images" in err and err.count("\n") == 1
    assert FeatureSplit(test.path).provenance["features"]["spatial_dtype"] == "float32", "old file kept intact"
    parts = test.path.with_name("test.h5.parts")
    assert len(list(parts.glob("shard-*.h5"))) >= 1, "shards before the bad image are kept for the resume"
    assert main(["encode", "--params", str(params), "--skip-bad-images"]) == 0
    fixed = FeatureSplit(test.path)
    assert fixed.n == test.n - 1 and len(fixed.skipped) == 1 and str(bad) in fixed.skipped[0]
    assert fixed.provenance["features"]["spatial_dtype"] == "float16" and not parts.exists()
    assert main(["inspect", str(cache)]) == 0
    assert "skipped 1 undecodable" in capsys.readouterr().out
    code, err = run(["encode", "--params", str(params)], capsys)  # without the flag, a file that skipped is not current
    assert code == 1 and str(bad) in err and FeatureSplit(test.path).skipped == fixed.skipped, "old file kept intact"
    make_image(bad, 0, seed=5)  # the image repaired: its new bytes are encoded, with no flag needed
    assert main(["encode", "--params", str(params)]) == 0
    repaired = FeatureSplit(test.path)
    assert repaired.n == test.n and not repaired.skipped and repaired.image_ids == test.image_ids


def test_second_run_keeps_complete_files(small, tmp_path: Path, caplog) -> None:
    root, cache = small
    params = write_params(tmp_path / "params.yaml", encode_section(root, "resnet", cache))
    assert main(["encode", "--params", str(params)]) == 0
    stamps = {p: p.stat().st_mtime_ns for p in cache.rglob("*.h5")}
    assert main(["encode", "--params", str(params), "--workers", "1"]) == 0
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*.h5")} == stamps, "runtime settings re-encode nothing"
    assert "up to date" in caplog.text


def test_models_and_datasets_listings(capsys) -> None:
    assert main(["models", "--filter", "ViT-B-16"]) == 0
    out = capsys.readouterr().out
    assert "ViT-B-16 " in out and "none" in out and "openai" in out
    assert main(["datasets"]) == 0
    assert "textile" in capsys.readouterr().out


def test_more_late_tokens_than_blocks_is_one_line(image_root: Path, tmp_path: Path, capsys) -> None:
    params = write_params(tmp_path / "p.yaml",
                          encode_section(image_root, "vit", tmp_path / "cache", features__late_tokens=3))
    assert main(["encode", "--params", str(params)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "late_tokens=3 exceeds the 2 blocks" in err


def test_an_unknown_head_is_named_before_any_file_is_looked_for(tmp_path, capsys) -> None:
    """The cheapest check first: no cache exists here, and the error is about the head."""
    import yaml

    from pipeline.cli import main

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"encode": {"dataset": {"name": "textile", "root": None},
                                                 "model": {"name": "ViT-B-32", "pretrained": "none"},
                                                 "cache_dir": str(tmp_path / "nothing")}}))
    for command in ("train", "evaluate"):
        assert main([command, "--params", str(params), "--head", "nope"]) == 1
        assert "unknown head 'nope'" in capsys.readouterr().err


def test_heads_lists_the_effective_parameters_with_params_yaml_applied(tmp_path: Path, capsys) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("heads:\n  coop: {epochs: 7}\n  gda: {alpha_grid: [-4, 2, 7]}\n")
    assert main(["heads", "--params", str(params), "--set", "heads.tip_adapter.per_dataset=false"]) == 0
    out = capsys.readouterr().out
    coop = out[out.index("\ncoop\n"):].split("\n")[4]
    assert "epochs=7*" in coop and "n_ctx=16," in coop, "the params file's value, marked; the others as coded"
    assert "alpha_grid=[-4.0, 2.0, 7]," in out[out.index("\ngda\n"):].split("\n")[3], "equal to the default: unmarked"
    assert "per_dataset=False*" in out[out.index("\ntip_adapter\n"):].split("\n")[3]
    assert out.startswith(f"parameters: the code defaults, with {params} applied")
    params.write_text("heads:\n  coop: {epochs: -3}\n")
    code = main(["heads", "--params", str(params)])
    assert code == 1 and "heads.coop.epochs must be >= 0, got -3" in capsys.readouterr().err


def test_an_unknown_head_is_named_before_torch_loads(tmp_path: Path) -> None:
    """`sweep --head typo` (or a typo in train.heads) is one line at once: no torch, open_clip or h5py imported."""
    import subprocess
    import sys

    params = tmp_path / "params.yaml"
    params.write_text("train: {heads: [zero_shot, gdaa]}\n")
    code = ("import sys\nfrom pipeline.cli import main\n"
            f"assert main(['sweep', '--params', {str(params)!r}]) == 1\n"
            f"assert main(['sweep', '--params', {str(params)!r}, '--head', 'nosuchhead']) == 1\n"
            "heavy = sorted({'torch', 'open_clip', 'h5py'} & set(sys.modules))\n"
            "assert not heavy, heavy\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "unknown head 'gdaa'; known: ape, ape_t" in done.stderr and "unknown head 'nosuchhead'" in done.stderr
    assert len([line for line in done.stderr.splitlines() if line.startswith("clipcache: error")]) == 2
