"""Stage 2 from the real cache: every head trains without an encoder, an image or the test split."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import open_clip
import PIL.Image
import pytest
from open_clip.modified_resnet import ModifiedResNet
from open_clip.transformer import VisionTransformer

import pipeline.store.reader as reader
from pipeline.cli import main
from pipeline.errors import ClipCacheError
from pipeline.heads import create_head, head_class, list_heads
from pipeline.heads.io import load_head
from pipeline.store import FeatureSplit
from pipeline.train.entry import train_from_params
from tests.heads.conftest import QUICK
from tests.helpers import PAIR, encode_section, write_params

OPENED: list[str] = []
RECORDING = [False]


def _audit(event: str, args: tuple) -> None:
    if RECORDING[0] and event == "open" and isinstance(args[0], (str, bytes, Path)):
        OPENED.append(str(args[0]))


sys.addaudithook(_audit)


# the shared cache keeps the tokens of the last block only: clip_lora adapts its text tower here (its image blocks run
# from the tokens entering block 0 in tests/heads/test_clip_lora.py)
HEADS = {**QUICK, "clip_lora": {**QUICK["clip_lora"], "encoder": "text"}}
FIRST_BLOCK = ("ivlp", "maple", "promptsrc")  # prompt every image block: fitted in tests/heads/test_vl_prompts.py


def params_for(report, kind: str, image_root: Path, tmp_path: Path, **encode_changes) -> Path:
    cache = report.folder.parents[1]
    section = encode_section(image_root, kind, cache, **encode_changes)
    return write_params(tmp_path / "params.yaml", section, train={"shots": 2, "seed": 1}, heads=HEADS,
                        evaluate={"results_dir": str(tmp_path / "models")})


def forbid(*_args, **_kwargs):
    raise AssertionError("stage 2 must not build an image encoder, run one on pixels or open an image")


@pytest.mark.parametrize("name", list_heads())
def test_every_head_trains_from_the_cache_alone(name: str, encoded, image_root: Path, tmp_path: Path,
                                                monkeypatch) -> None:
    kind, report = encoded
    params = params_for(report, kind, image_root, tmp_path)
    opened_h5: list[str] = []
    real_open_h5 = reader.open_h5
    monkeypatch.setattr(reader, "open_h5", lambda path: opened_h5.append(str(path)) or real_open_h5(path))
    banned = [(PIL.Image, "open"), (VisionTransformer, "_embeds"), (ModifiedResNet, "stem")]  # no pixels anywhere
    if not head_class(name).runs:  # only prompt learners rebuild the frozen model (to run its text tower / last blocks)
        banned += [(open_clip, "create_model"), (open_clip, "create_model_and_transforms")]
    for target, attr in banned:
        monkeypatch.setattr(target, attr, forbid)
    requires = create_head(name, HEADS.get(name, {})).requires
    if "late_tokens" in requires and kind == "resnet":
        with pytest.raises(ClipCacheError,
                           match=r"needs 'late_tokens'.*late_tokens: k > 0 \(CLIP ViT and timm ViT / Eva models\)"):
            train_from_params(params, [], name, {"device": "cpu"})
    elif name in FIRST_BLOCK:  # the shared cache keeps the tokens entering the last block only: named before a fit
        with pytest.raises(ClipCacheError, match=r"needs encode\.features\.late_tokens: 2 \(the cache holds 1\)"):
            train_from_params(params, [], name, {"device": "cpu"})
    elif "pooled" in requires:  # these caches hold no pooled features: named before any fit
        with pytest.raises(ClipCacheError, match=r"needs 'pooled'.*encode\.features\.pooled: true"):
            train_from_params(params, [], name, {"device": "cpu"})
    else:
        check_trains_from_the_cache_alone(name, kind, params, report, image_root, opened_h5)


def check_trains_from_the_cache_alone(name: str, kind: str, params: Path, report, image_root: Path,
                                      opened_h5: list[str]) -> None:
    """Fit through the stage-2 entry point while recording every file opened; check what was touched and written."""
    tmp_path = params.parent
    OPENED.clear()
    RECORDING[0] = True
    try:
        result = train_from_params(params, [], name, {"device": "cpu"})
    finally:
        RECORDING[0] = False
    touched = opened_h5 + OPENED
    assert not [p for p in touched if p.endswith("test.h5")], "stage 2 opened the test split"
    assert not [p for p in touched if p.startswith(str(image_root))], "stage 2 opened an image"
    assert {Path(p).name for p in opened_h5} == {"train.h5", "val.h5", "text.h5"}

    meta = json.loads((result.folder / "head.json").read_text())
    prov = meta["provenance"]
    assert meta["head"] == name and meta["params"] and (prov["shots"], prov["seed"]) == (2, 1)
    assert prov["encoder"]["pretrained"] == "none" and prov["encoder"]["random_weights"] is True
    assert prov["dataset"]["name"] == "image_folder" and set(prov["files"]) == {"k2-s1/train.h5", "k2-s1/val.h5",
                                                                                  f"{report.folder.name}/text.h5"}
    assert result.folder == tmp_path / "models" / name / "image_folder" / PAIR[kind] / "k2-s1"
    metrics = json.loads((result.folder / "fit.json").read_text())
    assert 0.0 <= metrics["val_acc"] <= 1.0 and metrics["model"].startswith("tiny")
    check_curves(result.folder, metrics)
    head, _ = load_head(result.folder)
    assert head.scores(FeatureSplit(report.folder / "k2-s1" / "val.h5")).shape == (3 * 2, 3)


def check_curves(folder: Path, fit: dict) -> None:
    """A head that trained has its epochs in dvclive/ (DVCLive's files: a row per epoch of loss and learning rate, no
    test metrics: nothing scored it); a head that trains nothing has no such folder."""
    curves = folder / "dvclive"
    assert curves.is_dir() == bool(fit["history"]), "curves exactly for the heads that trained"
    if fit["history"]:
        for name in ("train_loss", "lr"):
            rows = (curves / "plots" / "metrics" / f"{name}.tsv").read_text().splitlines()
            assert rows[0] == f"step\t{name}" and [int(r.split("\t")[0]) for r in rows[1:]] == [
                h["epoch"] for h in fit["history"]]
        summary = json.loads((curves / "metrics.json").read_text())
        assert "test" not in summary and summary["step"] == fit["history"][-1]["epoch"]
        assert summary.get("kept", {}).get("epoch") == fit["selected"].get("epoch")


def test_a_head_needing_spatial_maps_fails_early_naming_the_setting(image_root: Path, tmp_path: Path, capsys) -> None:
    cache = tmp_path / "cache"
    section = encode_section(image_root, "vit", cache, features__spatial=False, features__spatial_raw=False)
    params = write_params(tmp_path / "params.yaml", section, train={"shots": 2, "seed": 1},
                          evaluate={"results_dir": str(tmp_path / "m")})
    assert main(["encode", "--params", str(params)]) == 0
    with pytest.raises(ClipCacheError, match=r"'vt_clip' needs 'spatial'.*encode\.features\.spatial: true"):
        train_from_params(params, [], "vt_clip", {})
    capsys.readouterr()
    assert main(["train", "--params", str(params), "--head", "vt_clip"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "encode.features.spatial" in err
    assert not (tmp_path / "m").exists()


def test_train_before_encode_says_so(image_root: Path, tmp_path: Path, capsys) -> None:
    params = write_params(tmp_path / "p.yaml", encode_section(image_root, "vit", tmp_path / "nothing"),
                          evaluate={"results_dir": str(tmp_path / "results")})
    assert main(["train", "--params", str(params), "--head", "gda"]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_cli_train_with_overrides_and_heads_listing(encoded, image_root: Path, tmp_path: Path, capsys) -> None:
    kind, report = encoded
    if kind != "vit":
        pytest.skip("vt_clip's CLI options are checked once, on the ViT cache")
    params = params_for(report, kind, image_root, tmp_path)
    assert main(["train", "--params", str(params), "--head", "vt_clip", "--set", "heads.vt_clip.n_heads=2",
                 "--set", "heads.vt_clip.n_layers=2", "--set", "heads.vt_clip.epochs=1"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["head"] == "vt_clip" and out["random_weights"] is True
    saved = json.loads(next((tmp_path / "models").rglob("vt_clip/*/*/k2-s1/head.json")).read_text())
    assert (saved["params"]["n_heads"], saved["params"]["n_layers"]) == (2, 2)
    assert main(["heads"]) == 0
    listing = capsys.readouterr().out
    for name in list_heads():
        assert f"{name}\n  needs:" in listing
    assert "n_heads=8" in listing and "spatial" in listing
    assert main(["train", "--params", str(params), "--head", "nope"]) == 1
