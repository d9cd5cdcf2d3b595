"""A trained head's curves written with DVCLive: one row per epoch of its history, the final metrics in DVCLive's
summary, nothing for a head that trains nothing, and nothing but those files, offline, whatever DVC's environment
says (inside `dvc exp run`, a Studio token, DVCLive's test mode)."""

from __future__ import annotations

import csv
import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from pipeline.heads import create_head
from pipeline.heads.curves import write_curves

TEST = {"top1": 0.625, "mean_per_class_accuracy": 0.6, "ece": 0.05, "n_test": 40}


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and ".git" not in p.parts)


@pytest.mark.parametrize("keep", ["best_val", "last"])
def test_each_epoch_of_the_loop_is_a_dvclive_step(task, tmp_path: Path, keep: str) -> None:
    data, _ = task
    head = create_head("clip_adapter", {"epochs": 3, "keep": keep})
    head.fit(data)
    out = write_curves(tmp_path / "dvclive", head.history, head.selected, TEST)
    metrics = tmp_path / "dvclive" / "plots" / "metrics"
    assert out == tmp_path / "dvclive" and files(out) == [
        "metrics.json", "plots/metrics/lr.tsv", "plots/metrics/train_loss.tsv", "plots/metrics/val_acc.tsv"]
    for name in ("train_loss", "lr"):
        assert [(int(r["step"]), float(r[name])) for r in rows(metrics / f"{name}.tsv")] == [
            (h["epoch"], h[name]) for h in head.history] and len(head.history) == 3
    validated = [(h["epoch"], h["val_acc"]) for h in head.history if "val_acc" in h]
    assert [(int(r["step"]), float(r["val_acc"])) for r in rows(metrics / "val_acc.tsv")] == validated
    assert len(validated) == (3 if keep == "best_val" else 1)  # keep: last validates once, at the end
    assert head.history[0]["lr"] == 1e-5 < head.history[2]["lr"] < head.history[1]["lr"]  # warm-up, then cosine
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["kept"] == {"epoch": head.selected["epoch"], "val_acc": head.selected["val_acc"]}
    assert summary["test"] == {k: TEST[k] for k in ("top1", "mean_per_class_accuracy", "ece")}
    assert summary["step"] == 3 and summary["train_loss"] == head.history[-1]["train_loss"]


def test_a_head_that_trains_nothing_writes_no_curves(task, tmp_path: Path) -> None:
    data, _ = task
    head = create_head("zero_shot", {})
    head.fit(data)
    assert head.history == [] and write_curves(tmp_path / "dvclive", head.history, head.selected) is None
    assert not (tmp_path / "dvclive").exists()


class Studio(BaseHTTPRequestHandler):
    """A stand-in for DVC Studio's address that counts what is posted to it."""

    posted: ClassVar[list[str]] = []

    def do_POST(self) -> None:  # http.server's name for a POST's handler
        Studio.posted.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


ENVIRONMENTS = {
    # what `dvc exp run` sets for a stage's command, and a Studio token as a logged-in user has
    "dvc exp run + Studio": {"DVC_EXP_BASELINE_REV": "0" * 40, "DVC_EXP_NAME": "exp-1", "DVC_STUDIO_TOKEN": "t",
                             "DVC_STUDIO_REPO_URL": "git@example.com:a/b.git"},
    "DVCLIVE_TEST": {"DVCLIVE_TEST": "true", "STUDIO_TOKEN": "t", "DVC_STUDIO_REPO_URL": "git@example.com:a/b.git"},
}


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_dvclive_writes_its_files_and_nothing_else(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   environment: str) -> None:
    """Run from a Git repository without DVC (where DVCLive's Live would `dvc init`), under `dvc exp run`'s variables
    and a Studio token pointing at a local server: the repository is left as it was, nothing is posted, and the files
    land in the folder asked for."""
    repo, out = tmp_path / "repo", tmp_path / "runs" / "k1-s1" / "dvclive"
    repo.mkdir()
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    (repo / "a.txt").write_text("a")
    subprocess.run([*git, "add", "a.txt"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "a"], cwd=repo, check=True)
    server = HTTPServer(("127.0.0.1", 0), Studio)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Studio.posted.clear()
    monkeypatch.chdir(repo)
    for key, value in {**ENVIRONMENTS[environment], "DVC_ROOT": str(repo),
                       "DVC_STUDIO_URL": f"http://127.0.0.1:{server.server_port}"}.items():
        monkeypatch.setenv(key, value)
    try:
        history = [{"epoch": e, "train_loss": 1.0 / e, "lr": 0.1 / e, "val_acc": 0.5} for e in (1, 2)]
        write_curves(out, history, {"epoch": 2, "val_acc": 0.5})
    finally:
        server.shutdown()
        server.server_close()
    assert Studio.posted == []
    assert files(repo) == ["a.txt"] and not (repo / ".dvc").exists()
    status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True, check=True)
    assert status.stdout == ""
    assert files(tmp_path / "runs") == ["k1-s1/dvclive/metrics.json", "k1-s1/dvclive/plots/metrics/lr.tsv",
                                        "k1-s1/dvclive/plots/metrics/train_loss.tsv",
                                        "k1-s1/dvclive/plots/metrics/val_acc.tsv"]
