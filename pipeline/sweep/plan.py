"""A sweep: every run of the grid (pairs x heads x shots x seeds) not done yet, on an engine, with progress and ETA.

The driver plans the runs, reads the cache fingerprints once, skips every run whose folder already holds the same
fingerprint with every file matching the checksums its run.json records (a damaged run is fitted again, and named),
removes what killed runs left behind, and hands the rest to the engine. Killing a sweep loses at most
the runs in flight; the next sweep picks up from there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.data import is_test_only
from pipeline.engine import ClusterParams
from pipeline.errors import ClipCacheError, Interrupted
from pipeline.head_names import check_head_names
from pipeline.head_params import head_requires, head_runs
from pipeline.params import PROTOCOLS, TRANSFER_PROTOCOLS, EncodeParams
from pipeline.store.provenance import fingerprint
from pipeline.sweep.record import remove_leftovers, run_state
from pipeline.sweep.spec import RunResult, RunSpec
from pipeline.transductive_params import TransClipParams, TransductiveParams

log = logging.getLogger(__name__)


@dataclass
class SweepReport:
    """What a sweep did."""

    total: int  # runs in the grid
    results: list[RunResult] = field(default_factory=list)  # one per run, skipped ones included
    seconds: float = 0.0  # wall time of the sweep
    engine: str = ""
    repaired: dict[str, str] = field(default_factory=dict)  # key -> why: runs on disk that were damaged, fitted again

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def run_seconds(self) -> float:
        """The runs' own time (fit + evaluate + publish, measured inside each run)."""
        return sum(r.seconds.get("total", 0.0) for r in self.results if r.status == "done")

    @property
    def overhead_per_run(self) -> float | None:
        """(wall time - the runs' own time) / runs executed: what the engine and the driver cost per run, where runs
        executed one after another; None where they overlapped (parallel workers: the wall time is shorter than the
        runs' own time, and the difference says nothing about overhead)."""
        executed = self.count("done") + self.count("failed")
        if not executed or self.run_seconds > self.seconds:
            return None
        return (self.seconds - self.run_seconds) / executed

    def cost(self) -> str:
        """'overhead 0.120 s per run', or, for overlapping runs, 'about 1.8 runs at once' (their own time / wall)."""
        overhead = self.overhead_per_run
        if overhead is not None:
            return f"overhead {overhead:.3f} s per run"
        if not self.seconds or not self.run_seconds:
            return "nothing executed"
        return f"about {self.run_seconds / self.seconds:.1f} runs at once"


Transfer = Sequence[tuple[EncodeParams, tuple[EncodeParams, ...]]]  # (source, its targets): grid.transfer_plan


def plan_runs(pairs: Sequence[EncodeParams], heads: Sequence[str], head_params: dict[str, dict[str, Any]],
              results_dir: str, device: str = "auto", protocol: str = "all",
              transductive: TransductiveParams | None = None, transfer: Transfer | None = None) -> list[RunSpec]:
    """Every (pair, head, shots, seed) of the grid, in a stable order; then, for the heads `transductive.heads`
    lists, the same runs scored by TransCLIP (never unless listed). Under cross_dataset / domain_generalisation the
    pairs are the sources of `transfer`, each run scoring its targets too; otherwise test-only data sets (ImageNet's
    shifts) have no runs of their own."""
    listed = transductive.heads if transductive is not None else ()
    check_head_names((*heads, *listed))  # an unknown head is named before anything runs
    if protocol not in PROTOCOLS:
        raise ClipCacheError(f"train.protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    if listed and protocol != "all":
        raise ClipCacheError(f"transductive.heads ({', '.join(listed)}) cannot be scored under train.protocol "
                             f"{protocol!r}: TransCLIP refines predictions over all classes; empty it or use 'all'")
    if (protocol in TRANSFER_PROTOCOLS) != (transfer is not None):
        raise ValueError(f"protocol {protocol!r} and the transfer plan {transfer!r} do not go together")
    planned = list(transfer) if transfer is not None else [(p, ()) for p in pairs
                                                           if not is_test_only(p.dataset.registered)]

    def grid(names: Sequence[str], mode: TransClipParams | None) -> list[RunSpec]:
        return [RunSpec(pair, name, dict(head_params.get(name) or {}), shots, seed, results_dir, device, protocol,
                        mode, targets)
                for pair, targets in planned for name in names for shots in pair.protocol.shots
                for seed in pair.protocol.seeds]

    specs = grid(heads, None)
    if transductive is not None:
        specs += grid([name for name in heads if name in listed], transductive.transclip)
    return specs


def spec_state(spec: RunSpec) -> tuple[str, str, str]:
    """(state, why, fingerprint) of a planned run: run_state's 'done', 'absent', 'stale' or 'damaged', or
    'not encoded' (with no fingerprint) when a cache file it reads is missing."""
    try:
        digest = fingerprint(spec.inputs())
    except ClipCacheError:
        return "not encoded", "", ""
    state, why = run_state(spec.folder, digest)
    return state, why, digest


def split_done(specs: Sequence[RunSpec]) -> tuple[list[RunResult], list[RunSpec], dict[str, str], list[RunSpec]]:
    """(results of the runs already on disk, intact and with the same fingerprint; the specs still to run; key -> why
    of the pending runs whose folder holds this fingerprint but is damaged; the pending runs whose cache files are
    missing)."""
    done, pending, damaged, missing = [], [], {}, []
    for spec in specs:
        state, why, digest = spec_state(spec)
        if state == "not encoded":
            pending.append(spec)  # the run itself reports what is missing
            missing.append(spec)
            continue
        if state == "done":
            done.append(RunResult(spec.key, "skipped", digest))
            continue
        if state == "damaged":
            damaged[spec.key] = why
            log.warning("sweep: %s is damaged (%s): fitting it again", spec.key, why)
        pending.append(spec)
    return done, pending, damaged, missing


def needs_gpu(head: str) -> bool:
    """Heads that run encoder blocks or attend over spatial maps go to GPU workers where there are some."""
    return bool(head_runs(head)) or "spatial" in head_requires(head)


def run_sweep(specs: Sequence[RunSpec], cluster: ClusterParams,
              before: Callable[[list[RunSpec], list[RunSpec]], None] | None = None) -> SweepReport:
    """Execute every pending run of `specs` on the engine `cluster` names; return what happened. `before` sees the
    pending runs and those of them not encoded first (the model names' check, which loads the model library: a sweep
    with nothing to do never does)."""
    started = time.perf_counter()
    skipped, pending, damaged, missing = split_done(specs)
    report = SweepReport(len(specs), list(skipped), repaired=damaged)
    log.info("sweep: %d runs in the grid, %d already done, %d to run (%d of them damaged on disk)", len(specs),
             len(skipped), len(pending), len(damaged))
    if pending and before is not None:
        before(pending, missing)
    try:
        if pending:
            from pipeline.engine import open_engine
            from pipeline.sweep.execute import execute_run  # fitting and scoring: torch, only with runs to do

            with open_engine(cluster) as engine:
                report.engine = engine.name
                results = engine.map_unordered(execute_run, pending, [needs_gpu(s.head) for s in pending])
                try:
                    follow(results, report, len(skipped), started)
                except KeyboardInterrupt:
                    engine.abandon()
                    raise
                finally:
                    getattr(results, "close", lambda: None)()  # the engine's generator ends while it is open
    except KeyboardInterrupt:
        raise Interrupted(interrupted(report, len(skipped), len(pending))) from None
    remove_leftovers({spec.folder for spec in specs})  # nothing of this sweep is in flight any more
    report.seconds = time.perf_counter() - started
    return report


def interrupted(report: SweepReport, skipped: int, pending: int) -> str:
    """The one-line account of a sweep stopped by Ctrl-C or SIGTERM."""
    saved = report.count("done")
    other = pending - saved
    return (f"interrupted: {saved} run(s) fitted and saved by this sweep, {skipped} done before, {other} not finished "
            "(a run in flight is discarded; one a worker finishes meanwhile is kept); run the same command to resume "
            "from here")


def follow(results: Iterable[tuple[int, RunResult]], report: SweepReport, skipped: int, started: float) -> None:
    """Collect results as they arrive, logging runs done / total and an ETA."""
    to_run = report.total - skipped
    for executed, (_, result) in enumerate(results, start=1):
        report.results.append(result)
        elapsed = time.perf_counter() - started
        eta = elapsed / executed * (to_run - executed)
        outcome = (f"top-1 {result.metrics.get('top1', 0.0):.4f}, {result.seconds.get('total', 0.0):.2f} s"
                   if result.status == "done" else result.status + (f": {result.error}" if result.error else ""))
        log.info("[%d/%d] %s %s (%s); ETA %s", skipped + executed, report.total, result.key, outcome,
                 result.worker, format_seconds(eta))


def format_seconds(seconds: float) -> str:
    """1h02m03s / 4m05s / 6s."""
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
