"""The `clipcache` commands on cache files (export, inspect, verify): joined to the group in pipeline/cli.py."""

from __future__ import annotations

import json

import click

from pipeline.errors import ClipCacheError


@click.command()
@click.argument("path")
@click.option("--out", required=True, help="A .npz file (--format npz) or a folder (--format embeddings).")
@click.option("--format", "fmt", type=click.Choice(["npz", "embeddings"]), default="npz", show_default=True,
              help="npz: one file; embeddings: clip-retrieval's img_emb/ (normalised) and metadata/ (parquet).")
@click.option("--feature", "features", multiple=True, help="Row features to export (repeatable; default global).")
def export(path: str, out: str, fmt: str, features: tuple[str, ...]) -> None:
    """Write one split file's features with their labels, image ids and provenance for tools that do not read HDF5."""
    from pipeline.store.export import export_split

    for written in export_split(path, out, fmt, features or ("global",)):
        click.echo(f"wrote {written}")


@click.command()
@click.argument("path")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def inspect(path: str, as_json: bool) -> None:
    """Schema, shapes, dtypes, provenance and completeness of cache files under PATH."""
    from pipeline.store.inspect import HEALTHY, describe, render

    entries = describe(path)
    click.echo(json.dumps(entries, indent=1) if as_json else render(entries))
    unhealthy = [e for e in entries if not str(e["status"]).startswith(HEALTHY)]
    if unhealthy:
        raise ClipCacheError(f"{len(unhealthy)} of {len(entries)} entries are not healthy; first: "
                             f"{unhealthy[0]['path']}: {unhealthy[0]['status']}")


@click.command()
@click.argument("path", default=".")
def verify(path: str) -> None:
    """Read every cache file and fitted run under PATH in full and check them against their checksums (whatever was
    verified before); exit 1 naming the first damaged one."""
    from pipeline.store.verify import verify_path

    entries = verify_path(path)
    for entry in entries:
        click.echo(f"{entry['path']}: {entry['status']}")
    bad = [e for e in entries if not e["status"].startswith("ok")]
    click.echo(f"{len(entries) - len(bad)} of {len(entries)} verified whole")
    if bad:
        raise ClipCacheError(f"{len(bad)} of {len(entries)} damaged; first: {bad[0]['path']}: {bad[0]['status']}")
