"""Every bad value a user can write is one line naming the key or file at fault, exit 1, before any work: the table
of bad inputs tried (README, "Reliability"). Each case runs the real CLI in-process on a tiny encoded cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.cli import main
from tests.helpers import encode_section, write_params

ENCODE = [  # (override, what the line must say)
    ("encode.protocol.shots=[0]", "shots must be >= 1, got 0"),
    ("encode.protocol.shots=[-1]", "shots must be >= 1, got -1"),
    ("encode.protocol.shots=[a]", "encode.protocol.shots[0] must be int"),
    ("encode.protocol.shots=[1.5]", "encode.protocol.shots[0] must be int"),
    ("encode.protocol.shots=[]", "shots/seeds non-empty"),
    ("encode.protocol.seeds=[x]", "encode.protocol.seeds[0] must be int"),
    ("encode.protocol.seeds=[-1]", "encode.protocol.seeds and encode.views.seed must be >= 0"),
    ("encode.views.count=-1", "encode.views.count must be >= 0"),
    ("encode.views.count='3'", "encode.views.count must be int"),
    ("encode.views.seed=-1", "encode.views.seed must be >= 0"),
    ("encode.views.scale=[1.5,0.5]", "encode.views.scale must be [low, high] with 0 < low <= high <= 1"),
    ("encode.views.scale=[0,1]", "encode.views.scale must be [low, high]"),
    ("encode.views.scale=[0.5]", "encode.views.scale must have 2 items"),
    ("encode.features.late_tokens=-1", "encode.features.late_tokens must be >= 0"),
    ("encode.features.late_tokens=99", "late_tokens=99 exceeds the 2 blocks"),
    ("encode.features.global_dtype=int8", "encode.features.global_dtype must be one of"),
    ("encode.dataset.options.val_fraction=1.5", "val_fraction=1.5 and test_fraction=0.3 must be"),
    ("encode.dataset.options.val_fraction=-0.1", "val_fraction=-0.1"),
    ("encode.dataset.options.test_fraction=0.9", "test_fraction=0.9 must be"),
    ("encode.dataset.options.max_per_class=-5", "max_per_class must be a whole number >= 1"),
    ("encode.dataset.options.max_per_class=0", "max_per_class must be a whole number >= 1"),
    ("encode.dataset.options.split_seed=x", "split_seed must be a whole number >= 0"),
    ("encode.dataset.options.nope=1", "has no option 'nope'"),
    ("encode.dataset.name=nope", "unknown data set 'nope'"),
    ("encode.dataset.root=/nonexistent", "data set root '/nonexistent'"),
    ("encode.model.name=nope", "unknown open_clip model 'nope'"),
    ("encode.model.pretrained=nope", "unknown pretrained tag 'nope'"),
    ("encode.model.pretrained=/nope.pt", "checkpoint file '/nope.pt' does not exist"),
    ("encode.templates=[nope]", "unknown template set 'nope'"),
    ("encode.cache_dir=/proc/nope", "cannot use '/proc/nope'"),
    ("encode.protocl.shots=[1]", "unknown key encode.protocl; known: cache_dir, dataset, descriptions, features, "
                                 "model, protocol, templates, views"),
    ("encode.descriptions=[x]", "encode.descriptions must map data set names to files"),
    ("encode.descriptions={image_folder: /nonexistent.json}", "descriptions file '/nonexistent.json' cannot be read"),
    ("encode.descriptions={textile: /x.json}", "encode.descriptions names 'textile', which is no data set of the grid"),
    ("encod.x=1", "unknown section 'encod'"),
    ("runtime.batch_size=0", "runtime.batch_size and runtime.shard_images must be >= 1"),
    ("runtime.workers=-1", "runtime.workers >= 0"),
    ("runtime.shard_images=0", "runtime.shard_images must be >= 1"),
    # issue 20: a scalar where a list is expected, a mapping that is not one, unbounded sizes, NaN, YAML errors
    ("encode.protocol.shots=4", "encode.protocol.shots must be a list, got 4"),
    ("encode.views.scale=5", "encode.views.scale must be a list, got 5"),
    ("encode.templates=coop", "encode.templates must be a list, got 'coop'"),
    ("encode.dataset=3", "encode.dataset must be a mapping of keys to values, got '3'"),
    ("encode.views.count=1000000000", "encode.views.count must be at most 1000"),
    ("encode.protocol.shots=[1000000000]", "encode.protocol.shots must be at most 100000 per class"),
    ("encode.dataset.options.val_fraction=.nan", "val_fraction must be a finite number (a fraction of each class), "
                                                 "got nan"),
    ("encode.dataset.options.test_fraction=x", "test_fraction must be a finite number"),
    ("encode.protocol.shots=[1,", "override 'encode.protocol.shots=[1,': the value is not valid YAML"),
    ("encode.views.count=*a", "the value is not valid YAML"),
]
TRAIN = [  # (override, --head, what the line must say)
    ("train.shots=3", None, "k3-s1/train.h5' does not exist"),
    ("train.shots=-1", None, "train.shots must be >= 1"),
    ("train.seed=x", None, "train.seed must be int"),
    ("train.head=nope", None, "unknown head 'nope'"),
    ("encode.dataset.name=nope", None, "unknown data set 'nope'"),  # names before the cache is looked for
    ("encode.model.name=nope", None, "unknown open_clip model 'nope'"),
    ("encode.model.pretrained=nope", None, "unknown pretrained tag 'nope'"),
    ("train.protocol=nope", None, "train.protocol must be one of all, base_to_novel"),
    ("heads=3", None, "'heads' must map head names"),
    ("heads.coop=3", None, "heads.coop must map parameter names"),
    ("heads.nope.x=1", None, "unknown head 'nope'"),
    ("heads.tip_adapter.alpha_grid=[]", None, "heads.tip_adapter.alpha_grid must have 3 items"),
    ("heads.tip_adapter.nope=1", None, "unknown key heads.tip_adapter.nope"),
    ("heads.gda.alpha_grid=[a]", "gda", "heads.gda.alpha_grid must have 3 items"),
    ("heads.proker.lambda_grid=[-1]", "proker", "heads.proker.lambda_grid must have 3 items"),
    ("heads.linear_probe.c_grid=[0]", "linear_probe", "unknown key heads.linear_probe.c_grid"),
    ("heads.zero_shot.template_set=nope", "zero_shot", "heads.zero_shot.template_set must be one of"),
    ("heads.coop.epochs=-5", "coop", "heads.coop.epochs must be >= 0"),
    ("heads.coop.lr=-1", "coop", "heads.coop.lr must be >= 0"),
    ("heads.tip_adapter_f.eps=0", "tip_adapter_f", "heads.tip_adapter_f.eps must be > 0"),
    ("heads.coop.n_ctx=0", "coop", "heads.coop.n_ctx must be >= 1"),
    ("heads.clip_adapter.ratio=1.5", "clip_adapter", "heads.clip_adapter.ratio must be in [0, 1]"),
    ("heads.clip_adapter.ratio=-0.2", "clip_adapter", "heads.clip_adapter.ratio must be in [0, 1]"),
    ("heads.clip_adapter.weight_decay=-1", "clip_adapter", "heads.clip_adapter.weight_decay must be >= 0"),
    ("heads.clip_adapter.lr=.nan", "clip_adapter", "heads.clip_adapter.lr must be finite"),
    ("heads.clip_adapter.epochs=0", "clip_adapter", "heads.clip_adapter.epochs must be at least 1"),
    ("heads.clip_adapter.batch_size=0", "clip_adapter", "heads.clip_adapter.batch_size must be >= 1"),
    ("heads.vt_clip.epochs=1.5", "vt_clip", "heads.vt_clip.epochs must be int"),
    ("heads.mm_adapter.keep=first", "mm_adapter", "heads.mm_adapter.keep must be one of last, best_val"),
    ("evaluate.results_dir=/proc/x", None, "cannot use '/proc/x'"),
    # issue 20: zero-step and unbounded grids, sizes that must be at least one (a division by them follows)
    ("heads.tip_adapter.alpha_grid=[0.1,3.0,0]", None, "heads.tip_adapter.alpha_grid must be (start, stop, steps) "
                                                       "with 1 <= steps <= 100,000, got [0.1, 3.0, 0]"),
    ("heads.tip_adapter.beta_grid=[0.1,7.0,-3]", None, "heads.tip_adapter.beta_grid must be (start, stop, steps)"),
    ("heads.gda.alpha_grid=[-4,2,1000000000]", "gda", "heads.gda.alpha_grid must be (start, stop, steps)"),
    ("heads.proker.beta_grid=[0.5,3.0,0]", "proker", "heads.proker.beta_grid must be (start, stop, steps)"),
    ("heads.proker.lambda_grid=[0.001,1.0,0]", "proker", "heads.proker.lambda_grid must be (start, stop, steps)"),
    ("heads.linear_probe.lambda_grid=[-6,6,0]", "linear_probe", "heads.linear_probe.lambda_grid must be (start, "
                                                                "stop, steps)"),
    ("heads.gda.alpha_grid=4", "gda", "heads.gda.alpha_grid must be a list, got 4"),
    ("heads.vt_clip.n_heads=0", "vt_clip", "heads.vt_clip.n_heads must be >= 1, got 0"),
    ("heads.vt_clip.n_layers=0", "vt_clip", "heads.vt_clip.n_layers must be >= 1"),
    ("heads.mm_adapter.n_heads=0", "mm_adapter", "heads.mm_adapter.n_heads must be >= 1"),
    ("heads.clip_adapter.reduction=0", "clip_adapter", "heads.clip_adapter.reduction must be >= 1"),
    ("heads.vpt_late.n_prompts=-1", "vpt_late", "heads.vpt_late.n_prompts must be >= 0"),
    ("heads.lp_pp.alpha_every=0", "lp_pp", "heads.lp_pp.alpha_every must be >= 1"),
]


@pytest.fixture(scope="module")
def params(image_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("bad-inputs")
    path = write_params(where / "params.yaml", encode_section(image_root, "vit", where / "cache"),
                        {"workers": 0, "batch_size": 8}, train={"head": "tip_adapter", "shots": 2, "seed": 1},
                        evaluate={"results_dir": str(where / "results")})
    assert main(["encode", "--params", str(path)]) == 0
    return path


def refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = main(argv)
    lines = [line for line in capsys.readouterr().err.splitlines() if not line.startswith(("INFO ", "WARNING "))]
    assert code == 1 and len(lines) == 1 and lines[0].startswith("clipcache: error: "), lines
    return lines[0]


@pytest.mark.parametrize(("override", "says"), ENCODE)
def test_bad_encode_values_are_one_line(override: str, says: str, params: Path, capsys) -> None:
    stamp = {p: p.stat().st_mtime_ns for p in params.parent.rglob("*.h5")}
    assert says in refused(["encode", "--params", str(params), "--set", override], capsys)
    assert {p: p.stat().st_mtime_ns for p in params.parent.rglob("*.h5")} == stamp, "nothing already written is touched"


@pytest.mark.parametrize(("override", "head", "says"), TRAIN)
def test_bad_train_values_are_one_line_before_any_fit(override: str, head: str | None, says: str, params: Path,
                                                      capsys) -> None:
    argv = ["train", "--params", str(params), "--set", override, *(["--head", head] if head else [])]
    assert says in refused(argv, capsys)
    assert not (params.parent / "results").exists(), "no head was written"


SWEEP = [  # (override, what the line must say): the transductive section, checked before any run
    ("transductive=3", "transductive must be a mapping of keys to values"),
    ("transductive.heads=zero_shot", "transductive.heads must be a list, got 'zero_shot'"),
    ("transductive.heads=[nope]", "unknown head 'nope'"),
    ("transductive.heads=[zero_shot,zero_shot]", "transductive.heads lists a head twice"),
    ("transductive.nope=1", "unknown key transductive.nope"),
    ("transductive.transclip.pairing=x", "transductive.transclip.pairing must be 'authors' or 'aligned'"),
    ("transductive.transclip.gammas=[]", "transductive.transclip.gammas must be a non-empty list"),
    ("transductive.transclip.gammas=[.nan]", "gammas must be a non-empty list of finite values"),
    ("transductive.transclip.lambda_few_shot=-1", "lambdas finite and >= 0"),
    ("transductive.transclip.iterations=1000000000", "transductive.transclip.iterations must be between 1 and 1000"),
    ("transductive.transclip.neighbors=0", "transductive.transclip.neighbors must be between 1 and 1000"),
    ("transductive.transclip.support=3", "transductive.transclip.support must be bool"),
]


@pytest.mark.parametrize(("override", "says"), SWEEP)
def test_bad_transductive_values_are_one_line_before_any_run(override: str, says: str, params: Path, capsys) -> None:
    argv = ["sweep", "--params", str(params), "--head", "zero_shot", "--set", override]
    assert says in refused(argv, capsys)
    assert not (params.parent / "results").exists(), "no run was written"
