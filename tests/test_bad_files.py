"""Bad files, as a careless or hostile user leaves them: params files, fitted heads, cache files, images and
manifests, a full disk under the report. Each is one line naming the file and what is wrong, exit 1, before any
large allocation and without hanging; or, where the input is legitimate but unusual, handled correctly."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from pipeline.cli import main
from pipeline.data import create_dataset
from pipeline.data.decode import to_rgb
from pipeline.errors import ClipCacheError, NoSpace
from pipeline.params import load_params
from pipeline.store import FeatureSplit
from pipeline.store.atomic import ensure_space, no_space, too_large, write_json_atomic
from tests.helpers import PAIR, encode_section, make_folder, make_image, write_params


def one_error_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = main(argv)
    lines = [line for line in capsys.readouterr().err.splitlines() if not line.startswith(("INFO ", "WARNING "))]
    assert code == 1 and len(lines) == 1 and lines[0].startswith("clipcache: error: "), lines
    return lines[0]


@pytest.fixture(scope="module")
def fitted(image_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A params file with a tiny ViT cache and a fitted gda head (train.shots 2, seed 1)."""
    where = tmp_path_factory.mktemp("bad-files")
    path = write_params(where / "params.yaml", encode_section(image_root, "vit", where / "cache"),
                        {"workers": 0, "batch_size": 8}, train={"head": "gda", "shots": 2, "seed": 1},
                        evaluate={"results_dir": str(where / "results")})
    assert main(["encode", "--params", str(path)]) == 0
    assert main(["train", "--params", str(path)]) == 0
    return path


def copy_of(fitted: Path, tmp_path: Path) -> tuple[Path, Path]:
    """(params file, run folder) of a private copy of the fitted run (the cache is shared, read only)."""
    params = load_params(fitted)
    params["evaluate"]["results_dir"] = str(tmp_path / "results")
    shutil.copytree(fitted.parent / "results", tmp_path / "results")
    path = tmp_path / "params.yaml"
    path.write_text(json.dumps(params))
    return path, tmp_path / "results" / "gda" / "image_folder" / PAIR["vit"] / "k2-s1"


# --- params files ---

def test_a_section_given_twice_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("encode:\n  protocol: {shots: [1]}\ntrain: {}\nencode:\n  protocol: {shots: [2]}\n")
    with pytest.raises(ClipCacheError, match=r"params.yaml': key 'encode' is given twice in the mapping at line 1"):
        load_params(path)
    path.write_text("heads:\n  gda: {alpha_grid: [-4, 2, 7], alpha_grid: [0, 1, 2]}\n")
    with pytest.raises(ClipCacheError, match=r"key 'alpha_grid' is given twice in the mapping at line 2"):
        load_params(path)


def test_deep_nesting_is_refused_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("encode: " + "[" * 100 + "]" * 100 + "\n")
    with pytest.raises(ClipCacheError, match="nested more than 64 levels deep"):
        load_params(path)
    path.write_text("encode: " + "[" * 100_000 + "]" * 100_000 + "\n")  # deeper than the parser's recursion
    with pytest.raises(ClipCacheError, match="nested"):
        load_params(path)


BOMB = "".join(f"  {chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(9))


@pytest.mark.parametrize("where", ["heads:\n  tip_adapter:\n    alpha_grid: *j\n",
                                   "encode:\n  dataset: {name: image_folder, options: {val_fraction: *j}}\n"])
def test_an_alias_bomb_is_refused_at_once(tmp_path: Path, where: str, capsys) -> None:
    """9 levels of 9 aliases: 9^9 = 387 million values once expanded (the composed graph is a few hundred nodes)."""
    path = tmp_path / "params.yaml"
    path.write_text("bombs:\n  a: &a [lol]\n" + BOMB + where)
    started = time.perf_counter()
    assert "once its aliases are expanded" in one_error_line(["heads", "--params", str(path)], capsys)
    assert time.perf_counter() - started < 10


# --- fitted heads ---

def test_a_truncated_weights_file_is_one_line(fitted: Path, tmp_path: Path, capsys) -> None:
    params, run = copy_of(fitted, tmp_path)
    weights = run / "head.safetensors"
    weights.write_bytes(weights.read_bytes()[:40])  # inside the header
    assert "head.safetensors' is not a readable safetensors file" in one_error_line(
        ["evaluate", "--params", str(params)], capsys)


def test_a_head_record_without_provenance_is_one_line(fitted: Path, tmp_path: Path, capsys) -> None:
    params, run = copy_of(fitted, tmp_path)
    meta = json.loads((run / "head.json").read_text())
    del meta["provenance"]
    (run / "head.json").write_text(json.dumps(meta))
    assert "head.json': field provenance is missing or not a dict" in one_error_line(
        ["evaluate", "--params", str(params)], capsys)
    meta["provenance"] = {"shots": 2}
    (run / "head.json").write_text(json.dumps(meta))
    assert "field provenance.seed is missing" in one_error_line(["evaluate", "--params", str(params)], capsys)


# --- cache files ---

def rewritten(source: Path, target: Path, name: str, keep=lambda data: data, **create: object) -> Path:
    """A copy of a cache file whose dataset `name` is written again as `keep(data)` with `create`'s options (a
    `shape` without data: an unwritten dataset of that size); attributes, checksums among them, kept."""
    shutil.copy(source, target)
    with h5py.File(target, "r+") as handle:
        data = keep(handle[name][()])
        del handle[name]
        if "shape" in create:
            handle.create_dataset(name, dtype=data.dtype, **create)
        else:
            handle.create_dataset(name, data=data, **create)
    return target


def train_file(fitted: Path) -> Path:
    return fitted.parent / "cache" / "image_folder" / PAIR["vit"] / "k2-s1" / "train.h5"


@pytest.mark.parametrize(("name", "create", "says"), [
    ("global", {"chunks": (1, 32), "compression": "gzip"}, "dataset 'global' is chunked or compressed"),
    ("spatial", {"chunks": True}, "dataset 'spatial' is chunked or compressed"),
    ("global", {"shape": (10**10, 32), "chunks": (1024, 32), "compression": "gzip"}, "is chunked or compressed"),
    ("global", {"shape": (10**10, 32)}, "dataset 'global' has shape .*10000000000 image rows where 6 are expected"),
    ("labels", {"shape": (10**10,)}, "dataset 'labels' has shape .*10000000000 image rows where 6"),
])
def test_cache_layouts_and_sizes_are_checked_before_any_read(fitted: Path, tmp_path: Path, name: str,
                                                              create: dict, says: str) -> None:
    path = rewritten(train_file(fitted), tmp_path / "train.h5", name, **create)
    started = time.perf_counter()
    with pytest.raises(ClipCacheError, match=says):
        FeatureSplit(path)
    assert time.perf_counter() - started < 5  # nothing of 10^10 rows was allocated or inflated


@pytest.mark.parametrize(("name", "keep", "says"), [
    ("global", lambda a: a[:-1], r"dataset 'global' has shape \(5, 32\): 5 image rows where 6 are expected"),
    ("labels", lambda a: a[0], r"dataset 'labels' has shape \(\): no image rows where 6 are expected"),
    ("views/global", lambda a: a[:-1], r"dataset 'views/global' holds 2 views where 3 are expected"),
    ("global", lambda a: a[:, :16], r"dataset 'global' has feature size 16 where the model's is 32"),
    ("spatial", lambda a: a.astype(np.float16), r"dataset 'spatial' is float16 where float32 is expected"),
    ("spatial_raw", lambda a: a.astype(np.float16), r"dataset 'spatial_raw' is float16 where float32 is expected"),
])
def test_datasets_must_be_what_the_provenance_implies(fitted: Path, tmp_path: Path, name: str, keep, says: str) -> None:
    path = rewritten(train_file(fitted), tmp_path / "train.h5", name, keep)
    with pytest.raises(ClipCacheError, match=says):
        FeatureSplit(path)


def test_text_features_must_be_what_the_provenance_implies(fitted: Path, tmp_path: Path) -> None:
    from pipeline.store import TextFeatures

    text = fitted.parent / "cache" / "image_folder" / PAIR["vit"] / "text.h5"
    for name, keep, says in (("text/coop/mean", lambda a: a[:, :16], r"'text/coop/mean' has shape \(3, 16\) where "
                                                                     r"\(3, 32\) is expected"),
                             ("text/tip7/per_template", lambda a: a[:, :5], r"has shape \(3, 5, 32\) where "
                                                                            r"\(3, 7, 32\) is expected")):
        path = rewritten(text, tmp_path / f"{name.replace('/', '_')}.h5", name, keep)
        with pytest.raises(ClipCacheError, match=says):
            TextFeatures(path)
    extra = rewritten(text, tmp_path / "extra.h5", "text/coop/mean")
    with h5py.File(extra, "r+") as handle:
        handle.create_dataset("text/coop/other", data=np.zeros((3, 32), np.float32))
    with pytest.raises(ClipCacheError, match=r"dataset 'text/coop/other' is not one of its template sets' datasets"):
        TextFeatures(extra)


def test_a_damaged_string_heap_is_one_line(fitted: Path, tmp_path: Path) -> None:
    path = tmp_path / "train.h5"
    shutil.copy(train_file(fitted), path)
    raw = bytearray(path.read_bytes())
    heap = raw.rfind(b"GCOL", 0, raw.find(b"_thing/img_"))  # the global heap that holds image_id's strings
    assert heap > 0
    raw[heap : heap + 4] = b"XXXX"
    path.write_bytes(bytes(raw))
    with pytest.raises(ClipCacheError, match=r"train.h5'.* cannot be read \(.*bad global heap collection signature"):
        FeatureSplit(path)  # the provenance's strings share the heap: the first read that meets it names the file


# --- images, folders and manifests ---

def test_a_fifo_in_a_manifest_is_refused_without_blocking(tmp_path: Path) -> None:
    make_image(tmp_path / "a.png", 0, 1)
    os.mkfifo(tmp_path / "b.png")
    (tmp_path / "manifest.csv").write_text("path,label\na.png,cat\nb.png,dog\n")
    with pytest.raises(ClipCacheError, match=r"manifest.csv' row 2: 'b.png' is not a regular file"):
        create_dataset("manifest", tmp_path, {})


def test_one_image_under_two_labels_is_refused(tmp_path: Path) -> None:
    for i in range(4):
        make_image(tmp_path / f"{i}.png", i % 2, i)
    (tmp_path / "manifest.csv").write_text("path,label\n0.png,cat\n1.png,dog\n2.png,cat\n3.png,dog\n./0.png,dog\n")
    with pytest.raises(ClipCacheError, match=r"rows 1 and 5 list the image '\./0\.png' under two labels \('cat' "
                                             r"and 'dog'\)"):
        create_dataset("manifest", tmp_path, {})


def test_a_folder_link_leaving_the_root_is_refused_unless_allowed(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "root", ["a", "b"], 4)
    make_image(tmp_path / "outside.png", 0, 7)
    (root / "a" / "link.png").symlink_to(tmp_path / "outside.png")
    with pytest.raises(ClipCacheError, match=r"image path 'a/link\.png' leaves the data root"):
        create_dataset("image_folder", root, {})
    allowed = create_dataset("image_folder", root, {"allow_outside_root": True})
    assert sum(len(v) for v in allowed.splits.values()) == 9


@pytest.mark.parametrize(("values", "grey"), [
    (np.full((4, 4), 128.0), 128),  # 0-255 floats, as 8-bit values (was: all white)
    (np.full((4, 4), 0.5), 128),  # 0-1 floats, the usual convention
    (np.full((4, 4), 1.0), 255),
    (np.array([[-1.0, 3.0]] * 2), None),  # any other range is stretched: min -> 0, max -> 255
])
def test_float_images_are_scaled_by_the_range_they_hold(tmp_path: Path, values: np.ndarray, grey: int | None) -> None:
    path = tmp_path / "f.tif"
    Image.fromarray(values.astype(np.float32), mode="F").save(path)
    with Image.open(path) as image:
        assert image.mode == "F"
        rgb = np.asarray(to_rgb(image))
    if grey is None:
        assert rgb[0, 0].tolist() == [0, 0, 0] and rgb[0, 1].tolist() == [255, 255, 255]
    else:
        assert (rgb == grey).all()


# --- writes that fail ---

def test_the_file_size_limit_is_named_as_such(tmp_path: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))  # Python ignores SIGXFSZ: the write fails with EFBIG
    try:
        with pytest.raises(NoSpace) as error:
            write_json_atomic(tmp_path / "big.json", {"x": "y" * 10_000})
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert "file-size limit (ulimit -f: 4,096 bytes)" in str(error.value) and "disk space" not in str(error.value)
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_a_full_disk_under_the_report_is_one_line(fitted: Path, tmp_path: Path) -> None:
    """`clipcache report --out` on a 64 kB tmpfs (a private mount namespace): one line, exit 1, results untouched."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode:
        pytest.skip("this machine cannot make a private mount namespace (unshare -rm) for a small file system")
    params, run = copy_of(fitted, tmp_path)
    assert main(["evaluate", "--params", str(params)]) == 0
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    small = tmp_path / "small"
    small.mkdir()
    report = f"{sys.executable} -m pipeline.cli report --params {params} --out {small / 'report'}"
    done = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {small} || exit 90; "
                           f"{report}"], capture_output=True, text=True)
    if done.returncode == 90:
        pytest.skip(f"tmpfs cannot be mounted here: {done.stderr.strip()[:200]}")
    lines = [line for line in done.stderr.splitlines() if not line.startswith(("INFO ", "WARNING "))]
    assert done.returncode == 1 and len(lines) == 1, done.stderr[-2000:]
    assert "cannot write the report into" in lines[0] and "No space left on device" in lines[0]
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_the_space_checks_name_each_kind_of_failure(tmp_path: Path) -> None:
    """HDF5 reports the errno inside its message: each of ENOSPC, EDQUOT and EFBIG reads as a failure for want of
    space, and EFBIG (the file-size limit) is named as that limit."""
    for text in ("errno = 28", "errno = 122", "errno = 27", "No space left on device", "Disk quota exceeded",
                 "File too large"):
        assert no_space(RuntimeError(f"Can't write data ({text})")), text
    assert not no_space(RuntimeError("Can't write data (errno = 5, Input/output error)"))
    assert too_large(RuntimeError("(errno = 27)")) and not too_large(RuntimeError("(errno = 28)"))
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, hard))
    try:  # the margin (64 kB + 1%) counts: 950 kB of data does not fit under a 1 MB limit
        with pytest.raises(NoSpace, match=r"ulimit -f"):
            ensure_space(tmp_path / "f.h5", 950_000)
        ensure_space(tmp_path / "f.h5", 900_000)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
