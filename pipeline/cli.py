"""The `clipcache` command: a thin click group over the library; user mistakes print one line and exit 1."""

from __future__ import annotations

import json
import sys

import click

from pipeline.cli_files import export, inspect, verify
from pipeline.errors import (
    INTERRUPTED_EXIT,
    ClipCacheError,
    Interrupted,
    NoSpace,
    file_error,
    hard_exit,
    terminate_as_interrupt,
)
from pipeline.runlog import console_logging


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Debug logging, and each run's epochs on the console too.")
def cli(verbose: bool) -> None:
    """Encode once with frozen open_clip models; adapt few-shot heads on the cached features."""
    console_logging(verbose)  # a run's epochs go to its run.log (and here only with --verbose)


@cli.command()
@click.option("--filter", "contains", default=None, help="Only architectures whose name contains this.")
@click.option("--checkpoints", default="checkpoints", show_default=True, help="Folder of local checkpoint files.")
def models(contains: str | None, checkpoints: str) -> None:
    """Architectures and pretrained tags open_clip offers, plus local checkpoint files."""
    from pipeline.backbone.catalog import architectures, local_checkpoints

    for name, tags in architectures(contains).items():
        click.echo(f"{name:<40} none{''.join(', ' + t for t in tags)}")
    for path, size in local_checkpoints(checkpoints):
        click.echo(f"local checkpoint {path} ({size / 2**20:.1f} MiB): use it as encode.model.pretrained")


@cli.command()
def datasets() -> None:
    """Registered data-set layouts."""
    from pipeline.data import list_datasets

    click.echo("\n".join(list_datasets()))


@cli.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="Parameters file.")
@click.option("--set", "overrides", multiple=True, help="Override a parameter: encode.model.name=RN50 (repeatable).")
@click.option("--skip-bad-images", is_flag=True, default=None,
              help="Skip undecodable images and list them in the cache.")
@click.option("--repair", is_flag=True, default=None,
              help="Read complete files in full; rebuild those that fail their checksums.")
@click.option("--device", default=None, help="auto, cpu, cuda, cuda:1, mps (not tracked: re-encodes nothing).")
@click.option("--cluster", default=None,
              help="none, local:N, cuda, slurm, tcp://host:8786: one task per shard (not tracked).")
@click.option("--workers", type=int, default=None, help="Image-decoding processes.")
@click.option("--batch-size", type=int, default=None, help="Images (views counted) per forward pass.")
@click.option("--dataset", "datasets", multiple=True, help="Only this data set of the grid (repeatable).")
@click.option("--model", default=None, help="Only this model of the grid (ViT-B-32 or ViT-B-32__openai).")
def encode(params_path: str, overrides: tuple[str, ...], skip_bad_images: bool | None, repair: bool | None,
           device: str | None, cluster: str | None, workers: int | None, batch_size: int | None,
           datasets: tuple[str, ...], model: str | None) -> None:
    """Stage 1: encode every (data set, model) pair of the grid into cache/ (resumes an interrupted run)."""
    from pipeline.grid import check_pairs, grid_pairs
    from pipeline.params import apply_overrides, load_params

    check_pairs(grid_pairs(apply_overrides(load_params(params_path), list(overrides)), list(datasets) or None, model))
    from pipeline.encode.entry import encode_from_params  # torch and open_clip: after the names and roots

    encode_from_params(params_path, list(overrides), {"skip_bad_images": skip_bad_images, "repair": repair,
                                                      "device": device, "cluster": cluster, "workers": workers,
                                                      "batch_size": batch_size}, list(datasets) or None, model)


@cli.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="Parameters file.")
@click.option("--head", default=None, help="Head to fit (default: train.head); see `clipcache heads`.")
@click.option("--set", "overrides", multiple=True,
              help="Override: heads.vt_clip.n_heads=2, train.shots=4 (repeatable).")
@click.option("--device", default=None, help="auto, cpu, cuda, mps (not tracked).")
@click.option("--dataset", default=None, help="Only this data set of the grid.")
@click.option("--model", default=None, help="Only this model of the grid (ViT-B-32 or ViT-B-32__openai).")
def train(params_path: str, head: str | None, overrides: tuple[str, ...], device: str | None, dataset: str | None,
          model: str | None) -> None:
    """Stage 2: fit one head on the cached train/val tensors; never opens an image or the test split."""
    check_one_run(params_path, list(overrides), head, dataset, model)
    from pipeline.train.entry import train_from_params

    result = train_from_params(params_path, list(overrides), head, {"device": device}, dataset, model)
    click.echo(json.dumps({k: v for k, v in result.metrics.items() if k != "history"}, default=str))


@cli.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="Parameters file.")
@click.option("--head", default=None, help="Head to score (default: train.head).")
@click.option("--set", "overrides", multiple=True, help="Override: train.shots=4, train.seed=2 (repeatable).")
@click.option("--device", default=None, help="auto, cpu, cuda, mps (not tracked).")
@click.option("--dataset", default=None, help="Only this data set of the grid.")
@click.option("--model", default=None, help="Only this model of the grid (ViT-B-32 or ViT-B-32__openai).")
def evaluate(params_path: str, head: str | None, overrides: tuple[str, ...], device: str | None,
             dataset: str | None, model: str | None) -> None:
    """Stage 3: score a fitted head on the test split (the only stage that opens it), on the runtime device."""
    check_one_run(params_path, list(overrides), head, dataset, model)
    from pipeline.evaluate.entry import evaluate_from_params

    record = evaluate_from_params(params_path, list(overrides), head, dataset, model, {"device": device})
    metrics = {k: v for k, v in record["metrics"].items() if k != "confusion"}
    click.echo(json.dumps({"head": record["head"], "shots": record["shots"], "seed": record["seed"], **metrics,
                           "random_weights": record["random_weights"]}))


@cli.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="Parameters file.")
@click.option("--head", "heads", multiple=True, help="Sweep only this head (repeatable; default: train.heads).")
@click.option("--set", "overrides", multiple=True, help="Override: heads.gda.alpha_grid=[-2,2,9] (repeatable).")
@click.option("--cluster", default=None,
              help="none, local:N, cuda, slurm, jobqueue-local:N or tcp://host:8786 (not tracked).")
@click.option("--device", default=None, help="auto, cpu, cuda, mps (not tracked).")
@click.option("--dataset", "datasets", multiple=True, help="Only this data set of the grid (repeatable).")
@click.option("--model", default=None, help="Only this model of the grid (ViT-B-32 or ViT-B-32__openai).")
@click.option("--prune", is_flag=True, help="Remove run folders of these heads that the grid no longer holds.")
def sweep(params_path: str, heads: tuple[str, ...], overrides: tuple[str, ...], cluster: str | None,
          device: str | None, datasets: tuple[str, ...], model: str | None, prune: bool) -> None:
    """Fit and evaluate every run of the grid (data sets x models x heads x shots x seeds) not done yet."""
    from pipeline.head_names import check_head_names
    from pipeline.params import apply_overrides, load_params, train_params

    named = list(heads) or list(train_params(apply_overrides(load_params(params_path), list(overrides)).get("train"))
                                .heads)
    check_head_names(named)  # a typo is named before torch and open_clip load
    from pipeline.sweep.entry import sweep_from_params

    report = sweep_from_params(params_path, list(overrides), list(heads) or None,
                               {"cluster": cluster, "device": device}, list(datasets) or None, model, prune)
    click.echo(json.dumps({"runs": report.total, "done_now": report.count("done"),
                           "already_done": report.count("skipped"), "not_applicable": report.count("n/a"),
                           "failed": report.count("failed"), "repaired": report.repaired,
                           "seconds": round(report.seconds, 2),
                           "engine": report.engine,
                           "overhead_per_run_s": report.overhead_per_run and round(report.overhead_per_run, 4)}))


@cli.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="Parameters file.")
@click.option("--head", "heads", multiple=True, help="Only this head (repeatable; default: train.heads).")
@click.option("--set", "overrides", multiple=True, help="Override: heads.gda.alpha_grid=[-2,2,9] (repeatable).")
@click.option("--dataset", "datasets", multiple=True, help="Only this data set of the grid (repeatable).")
@click.option("--model", default=None, help="Only this model of the grid (ViT-B-32 or ViT-B-32__openai).")
def status(params_path: str, heads: tuple[str, ...], overrides: tuple[str, ...], datasets: tuple[str, ...],
           model: str | None) -> None:
    """Where every run of the grid stands, per head and data set (done, pending, stale, damaged, not encoded),
    without fitting anything."""
    from pipeline.sweep.entry import status_table, sweep_status

    click.echo(status_table(sweep_status(params_path, list(overrides), list(heads) or None, list(datasets) or None,
                                         model)))


@cli.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="Parameters file.")
@click.option("--results", default=None, help="Folder of evaluation JSONs (default: evaluate.results_dir).")
@click.option("--out", default=None, help="Where tables and figures go (default: evaluate.report_dir).")
@click.option("--set", "overrides", multiple=True, help="Override: evaluate.report_dir=report-b (repeatable).")
def report(params_path: str, results: str | None, out: str | None, overrides: tuple[str, ...]) -> None:
    """Rebuild the tables (Markdown, CSV), figures and index.html from the evaluation JSON files alone (no torch)."""
    from pipeline.report import build_report, report_settings

    settings = report_settings(params_path, list(overrides))
    written = build_report(results or settings.results_dir, out or settings.report_dir, settings.curves)
    click.echo(written[0].read_text())
    click.echo("wrote " + ", ".join(str(p) for p in written))


@cli.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True,
              help="Parameters file whose heads.<name> sections apply (code defaults when it does not exist).")
@click.option("--set", "overrides", multiple=True, help="Override: heads.coop.epochs=50 (repeatable).")
def heads(params_path: str, overrides: tuple[str, ...]) -> None:
    """The registered heads, what each needs from the cache, and its effective parameters: params.yaml's values
    (marked *) over the code defaults."""
    from pathlib import Path

    from pipeline.head_names import HEADS
    from pipeline.head_params import build_params, describe_params, head_requires, head_runs, head_section
    from pipeline.params import apply_overrides, as_dict, load_params

    exists = Path(params_path).is_file()
    params = apply_overrides(load_params(params_path) if exists else {}, list(overrides))
    click.echo(f"parameters: the code defaults, with {params_path} applied (* marks its values)" if exists else
               f"parameters: the code defaults ({params_path} does not exist)")
    for name in sorted(HEADS):
        defaults, effective = describe_params(name), as_dict(build_params(name, head_section(params, name)))
        shown = ", ".join(f"{k}={v}{'*' if json.dumps(v) != json.dumps(defaults[k]) else ''}"
                          for k, v in effective.items())
        runs = head_runs(name)
        runs_line = (f"\n  runs in stage 2: {', '.join(runs)} (frozen, rebuilt from the cache's provenance)" if runs
                     else "")
        click.echo(f"{name}\n  needs: {', '.join(sorted(head_requires(name)))}{runs_line}\n  params: {shown}")


def check_one_run(params_path: str, overrides: list[str], head: str | None, dataset: str | None,
                  model: str | None) -> None:
    """The head and the (data set, model) pair of `train` / `evaluate`, named before torch loads."""
    from pipeline.grid import one_pair
    from pipeline.head_names import check_head_names
    from pipeline.params import apply_overrides, load_params, train_params

    params = apply_overrides(load_params(params_path), overrides)
    check_head_names([head or train_params(params.get("train")).head])
    one_pair(params, dataset, model)


@cli.command()
def presets() -> None:
    """The papers' protocols `clipcache preset NAME` applies: data sets, backbones, shots x seeds, heads."""
    from pipeline.presets import list_presets, load_preset

    for name in list_presets():
        p = load_preset(name)
        models = ", ".join(f"{m['name']} ({m['pretrained']})" for m in p.models)
        shots, seeds = p.encode["protocol"]["shots"], p.encode["protocol"]["seeds"]
        click.echo(f"{name}: {p.title}\n  {p.citation}; code: {p.code}\n  data sets: {', '.join(p.datasets)}\n"
                   f"  models: {models}; shots {shots} x seeds {seeds}; protocol {p.protocol}\n"
                   f"  heads: {', '.join(p.heads)}")
        for note in p.notes:
            click.echo(f"  - {note}")


@cli.command()
@click.argument("name")
@click.option("--data-root", required=True, help="Folder holding the data sets in CoOp's layout ($DATA).")
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="Parameters file to rewrite.")
@click.option("--dataset", "datasets", multiple=True, help="Only these data sets of the preset (repeatable).")
@click.option("--unchecked", is_flag=True, help="Write it even where the data sets' folders are not on this machine "
                                                 "(params for another machine).")
def preset(name: str, data_root: str, params_path: str, datasets: tuple[str, ...], unchecked: bool) -> None:
    """Rewrite PARAMS's grid, encode protocol, heads and their parameters to the paper's protocol NAME (runtime,
    evaluate and the cache folder are kept); then `dvc repro` (or encode, sweep, report) runs it. Every data set's
    folder under --data-root is checked first (all at once) unless --unchecked."""
    from pipeline.params import load_params
    from pipeline.presets import load_preset
    from pipeline.presets.apply import apply_preset, check_roots, write_params

    chosen = load_preset(name)
    params = apply_preset(load_params(params_path), chosen, data_root, list(datasets) or None)
    if not unchecked:
        check_roots(chosen.name, params["grid"]["datasets"], data_root)
    write_params(params_path, params, f"the {name} preset ({chosen.citation}), applied by `clipcache preset`")
    click.echo(f"{params_path}: {len(params['grid']['datasets'])} data set(s) x {len(chosen.models)} model(s), "
               f"heads {', '.join(chosen.heads)}; next: dvc repro (or clipcache encode && clipcache sweep && "
               f"clipcache report)")


for command in (export, inspect, verify):  # the commands on cache files (pipeline/cli_files.py)
    cli.add_command(command)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the group; a ClipCacheError becomes one line on stderr and exit code 1 (the program, run
    with no `argv`, ends at once on a disk-full error: see NoSpace)."""
    try:
        with terminate_as_interrupt():
            cli.main(args=argv, prog_name="clipcache", standalone_mode=False)
    except Interrupted as exc:
        click.echo(f"clipcache: {exc}", err=True)
        return INTERRUPTED_EXIT
    except ClipCacheError as exc:
        click.echo(f"clipcache: error: {exc}", err=True)
        if isinstance(exc, NoSpace) and argv is None:
            hard_exit(1)
        return 1
    except OSError as exc:
        if file_error(exc) is None:
            raise
        click.echo(f"clipcache: error: {file_error(exc)}", err=True)
        return 1
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("clipcache: aborted", err=True)
        return INTERRUPTED_EXIT
    return 0


if __name__ == "__main__":
    sys.exit(main())
