"""Disk full: one line naming the file and the bytes it needs, exit 1, nothing already written lost, and the next run
(once space is free) ends with files equal to an uninterrupted encode. Real `clipcache encode` processes."""

from __future__ import annotations

import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import assert_same_tensors, encode_section, write_params

CLI = [sys.executable, "-m", "pipeline.cli"]
RUNTIME = {"workers": 0, "batch_size": 8, "shard_images": 4}


def params_at(image_root: Path, cache: Path, where: Path) -> Path:
    return write_params(where, encode_section(image_root, "vit", cache), RUNTIME)






def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if not line.startswith(("INFO ", "WARNING "))]


@pytest.fixture(scope="module")
def reference(image_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted encode of the same params."""
    where = tmp_path_factory.mktemp("reference")
    subprocess.run([*CLI, "encode", "--params", str(params_at(image_root, where / "cache", where / "p.yaml"))],
                   check=True, capture_output=True)
    return where / "cache"


@pytest.mark.slow
def test_a_file_size_limit_is_one_line_then_the_run_resumes_bitwise(image_root: Path, tmp_path: Path,
                                                                    reference: Path) -> None:
    params = params_at(image_root, tmp_path / "cache", tmp_path / "p.yaml")

    def limited() -> None:  # writes past 260 kB fail with EFBIG (SIGXFSZ ignored, as a shell's `ulimit -f` does)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (260_000, 260_000))

    failed = subprocess.run([*CLI, "encode", "--params", str(params)], preexec_fn=limited, capture_output=True,
                            text=True)
    lines = error_lines(failed.stderr)
    assert failed.returncode == 1 and len(lines) == 1, failed.stderr[-2000:]
    assert "train.h5'" in lines[0] and "bytes" in lines[0] and "ulimit -f" in lines[0]
    written = [str(p) for p in (tmp_path / "cache").rglob("*.h5")]
    assert any(name.endswith("text.h5") for name in written) and any(name.endswith("test.h5") for name in written)
    assert list((tmp_path / "cache").rglob("train.h5.parts/shard-*.h5")), "the shards already encoded are kept"
    again = subprocess.run([*CLI, "encode", "--params", str(params)], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "up to date" in again.stderr and not list((tmp_path / "cache").rglob("*.tmp-*"))
    assert_same_tensors(tmp_path / "cache", reference)


@pytest.mark.slow
def test_a_full_device_is_one_line_then_the_run_resumes_bitwise(image_root: Path, tmp_path: Path,
                                                                reference: Path) -> None:
    """A real full file system: a 200 kB tmpfs mounted in a private user and mount namespace, then enlarged."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode:
        pytest.skip("this machine cannot make a private mount namespace (unshare -rm) for a small file system")
    mount = tmp_path / "small"
    mount.mkdir()
    params = params_at(image_root, mount / "cache", tmp_path / "p.yaml")
    encode = " ".join([*CLI, "encode", "--params", str(params)])
    script = (f"mount -t tmpfs -o size=200k tmpfs {mount} || exit 90; "
              f"{encode} 2> {tmp_path / 'first.err'}; echo $? > {tmp_path / 'first.rc'}; "
              f"ls -R {mount} > {tmp_path / 'first.ls'}; "
              f"mount -o remount,size=8m {mount} || exit 91; "
              f"{encode} 2> {tmp_path / 'second.err'}; echo $? > {tmp_path / 'second.rc'}; "
              f"cp -r {mount / 'cache'} {tmp_path / 'kept'}")
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True)
    if done.returncode in (90, 91):
        pytest.skip(f"tmpfs cannot be mounted here: {done.stderr.strip()[:200]}")
    lines = error_lines((tmp_path / "first.err").read_text())
    assert (tmp_path / "first.rc").read_text().strip() == "1" and len(lines) == 1, lines
    assert "not enough disk space to write" in lines[0] and "bytes are free there" in lines[0]
    assert "text.h5" in (tmp_path / "first.ls").read_text(), "the files finished before the disk filled are kept"
    assert (tmp_path / "second.rc").read_text().strip() == "0", (tmp_path / "second.err").read_text()[-2000:]
    assert_same_tensors(tmp_path / "kept", reference)
