"""Command line: ``falab run | sweep | plot | reproduce | list | bench | train``.

User mistakes (bad config, unknown paper, bad option value, bad environment variable) print one line
``Invalid <name>: <value> (expected ...)`` and exit with code 2, without a traceback and before anything is written to
``--out``; a run that fails (diverges, stalls, an experiment errors, the disk fills) exits with code 1 after writing
what it recorded; an interrupt (Ctrl-C) exits with 130 and one line saying what was kept.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ._checks import FalabInputError, check_seed, clamp_threads, invalid
from ._io import check_out_dir

if TYPE_CHECKING:  # the CLI imports the experiments lazily (startup time of `falab --help`)
    from .experiments import Experiment

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="falab: learning rules of neural networks (BP, FA, DFA, FA*, sign symmetry) — exact flows, "
                       "conserved quantities, implicit bias, and the papers' claims reproduced.")


def _threads() -> None:
    """One torch thread unless FALAB_THREADS says otherwise: measured here, small-matrix work with 2 threads ran
    3-1000x slower (see `falab bench`)."""
    import torch

    n = clamp_threads("FALAB_THREADS", os.environ.get("FALAB_THREADS", "1"), warn=lambda m: typer.echo(m, err=True))
    torch.set_num_threads(n)


def _fail(msg: str, code: int) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(code)


def _checked_out(out: Path, files: tuple[str, ...] = (), dirs: tuple[str, ...] = ()) -> Path:
    """``--out`` validated before anything runs: resolved once, not a file, writable, no symlinks or entries of the
    wrong kind among the outputs a command writes (nothing is created here)."""
    from ._io import check_targets

    resolved = check_out_dir(out, "--out")
    check_targets(resolved, files=files, dirs=dirs, name="--out")
    return resolved


def _warn_size(estimate: float) -> None:
    from ._checks import memory_warning

    note = memory_warning(estimate)
    if note:
        typer.echo(note, err=True)


ALLOW_LARGE_HELP = "run even when the estimated memory exceeds the available memory"


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="YAML run config (see configs/)")],
    out: Annotated[Path, typer.Option("--out", help="result directory")] = Path("results/run"),
    allow_large: Annotated[bool, typer.Option("--allow-large", help=ALLOW_LARGE_HELP)] = False,
    resume: Annotated[bool, typer.Option("--resume", help="keep a finished run of this config in --out, or rerun an "
                                                          "interrupted one into it")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace an earlier run in --out")] = False,
) -> None:
    """Run one config: writes OUT/manifest.json, OUT/metrics.csv (appended as the run records) and OUT/figures/."""
    from .dynamics import Diverged
    from .runs import load_config
    from .runs import run as run_config
    from .runs._config import check_run_size, estimate_memory
    from .runs._runner import OUTPUT_FILES

    _threads()
    out = _checked_out(out, files=OUTPUT_FILES, dirs=("figures",))
    cfg = load_config(config)
    check_run_size(cfg, allow_large=allow_large)
    _warn_size(estimate_memory(cfg)[0])
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

    # The bar starts with the first record, after every check: an error before it stays one line on stderr.
    bar = Progress(TextColumn(f"running {config.name}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                   TimeElapsedColumn(), console=Console(stderr=True), transient=True)
    task: list[TaskID] = []

    def progress(fraction: float) -> None:
        if not task:
            bar.start()
            task.append(bar.add_task("run", total=1.0))
        bar.update(task[0], completed=fraction)

    def stop() -> None:
        if task and bar.live.is_started:  # stopping a bar that never started prints an empty line
            bar.stop()

    try:
        result = run_config(cfg, out, progress=progress, allow_large=allow_large, resume=resume, overwrite=overwrite)
    except Diverged as exc:
        stop()
        _fail(str(exc), 1)
    finally:
        stop()
    if result.resumed:
        status = result.manifest.get("status")
        typer.echo(f"{out} already holds this run, finished with status {status} "
                   f"({result.manifest.get('records')} records); nothing rerun")
        if status != "ok":
            raise typer.Exit(1)
        return
    loss = result.trajectory.metrics.get("loss")
    final = f"; final loss {float(loss[-1].max()):.4g}" if loss else ""
    typer.echo(f"wrote {out}/manifest.json, metrics.csv ({len(result.trajectory.times)} records){final}")


@app.command()
def sweep(
    sweep_file: Annotated[Path, typer.Argument(help="YAML sweep: a base run config plus grid/zip axes (see "
                                                    "configs/sweeps/)")],
    out: Annotated[Path, typer.Option("--out", help="sweep directory (sweep.json, cells/<hash>.parquet|json)")] = Path(
        "results/sweep"),
    workers: Annotated[int, typer.Option("--workers", help="single-threaded worker processes of the local dask "
                                                           "cluster")] = 2,
    scheduler: Annotated[str | None, typer.Option("--scheduler", help="address of a running dask scheduler "
                                                                      "(tcp://host:8786) instead of a local cluster")] = None,
    batch: Annotated[int | None, typer.Option("--batch", help="cells per task, run as one ensemble when they differ "
                                                              "only in seed/init/feedback/noise (default: the sweep "
                                                              "file's batch, else 1)")] = None,
    resume_changed: Annotated[bool, typer.Option("--resume-changed", help="reuse a directory made by an earlier "
                                                                          "version of the sweep file")] = False,
    allow_large: Annotated[bool, typer.Option("--allow-large", help=ALLOW_LARGE_HELP)] = False,
) -> None:
    """Run every cell of a sweep on dask (resumable: a rerun skips finished cells); exit 1 if any cell failed."""
    _threads()
    if scheduler is not None and workers != 2:
        raise invalid("--workers", workers, "no --workers with --scheduler (the cluster has its own workers)")
    if isinstance(workers, int) and not 1 <= workers <= 256:
        raise invalid("--workers", workers, "an integer in [1, 256]")
    if batch is not None and batch < 1:
        raise invalid("--batch", batch, "an integer >= 1 (cells per task)")
    out = _checked_out(out, files=("sweep.json",), dirs=("cells",))
    from .sweeps import load_sweep, run_sweep

    spec = load_sweep(sweep_file, allow_large=allow_large)  # every cell validated before anything runs
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("failed {task.fields[failed]}"), TimeElapsedColumn(), TextColumn("eta"),
                   TimeRemainingColumn(), console=Console(stderr=True), transient=not sys.stderr.isatty())
    task = bar.add_task(f"sweep {sweep_file.name}", total=len(spec.cells), failed=0, start=False)
    failed = [0]

    def on_start(total: int, todo: int) -> None:
        bar.start()
        bar.start_task(task)
        bar.update(task, completed=total - todo)

    def on_done(st: dict[str, object]) -> None:
        failed[0] += st["status"] != "ok"
        bar.update(task, advance=1, failed=failed[0])

    try:
        summary = run_sweep(spec, out, workers=workers, scheduler=scheduler, batch=batch,
                            resume_changed=resume_changed, on_start=on_start, on_done=on_done)
    finally:
        if bar.live.is_started:
            bar.stop()
    counts = ", ".join(f"{n} {k}" for k, n in sorted(summary.counts.items()))
    typer.echo(f"{summary.total} cells: {counts} ({summary.skipped} finished before, {summary.ran} run now in "
               f"{summary.seconds:.1f} s). Wrote {out}/sweep.json and {out}/cells/")
    if summary.failures:
        for st in summary.failures[:20]:
            typer.echo(f"  cell {st['index']} ({st['hash']}): {st['status']}: {st['message']}", err=True)
        if len(summary.failures) > 20:
            typer.echo(f"  ... and {len(summary.failures) - 20} more (falab.sweeps.statuses lists them all)", err=True)
        _fail(f"{len(summary.failures)} of {summary.total} cells failed", 1)


@app.command()
def plot(
    sweep_dir: Annotated[Path, typer.Argument(help="a directory written by falab sweep")],
    x: Annotated[str, typer.Option("--x", help="an axis of the sweep, or 'time' for curves")],
    y: Annotated[str, typer.Option("--y", help="a recorded measure (measure:index for one component, default 0)")],
    hue: Annotated[str | None, typer.Option("--hue", help="an axis drawn as one line per value")] = None,
    facet: Annotated[str | None, typer.Option("--facet", help="an axis drawn as one panel per value")] = None,
    heat: Annotated[str | None, typer.Option("--heat", help="a second axis: heat map of the final measure over "
                                                            "--x and --heat (mean over the other axes and seeds)")] = None,
    threshold: Annotated[float | None, typer.Option("--threshold", help="plot the first time the measure is <= this "
                                                                        "value instead of its final value")] = None,
    out_file: Annotated[Path | None, typer.Option("--out", help="PNG file (default SWEEP_DIR/figures/<y>_vs_<x>.png)")] = None,
) -> None:
    """Line plots over an axis or over time (mean and range over seeds and members), or heat maps over two axes."""
    from .plots._sweeps import plot_sweep
    from .sweeps import load, read_manifest

    manifest = read_manifest(sweep_dir)
    frame = load(sweep_dir, statuses_of=("ok",))
    target = out_file
    if target is None:
        name = y.replace(":", "_") + f"_vs_{x}" + (f"_{heat}" if heat else "")
        target = sweep_dir / "figures" / f"{name}.png"
    parent = check_out_dir(target.parent, "--out directory")
    from ._io import check_targets

    check_targets(parent, files=[target.name], name="--out")
    path = plot_sweep(frame, manifest.get("axes", []), x=x, y=y, hue=hue, facet=facet, heat=heat,
                      threshold=threshold, out=parent / target.name)
    typer.echo(f"wrote {path}")


PAPER_CHOICES = ("P000", "P002", "P003", "P004", "NN", "FALAB")  # FALAB: falab's own claims (Beyond the papers)


@app.command()
def reproduce(
    papers: Annotated[list[str] | None, typer.Argument(help="papers to reproduce: P000 P002 P003 P004 NN FALAB (default: all)")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="shrunk sizes and horizons; the same decisions")] = False,
    out: Annotated[Path, typer.Option("--out", help="output directory")] = Path("results/reproduce"),
    seed: Annotated[int, typer.Option(help="base seed: claims are decided over seeds S, S+1, ...")] = 0,
    seeds: Annotated[int, typer.Option("--seeds", help="how many seeds every claim is decided over")] = 3,
) -> None:
    """Run the registered experiments, decide every claim over several seeds, and write OUT/claims.json,
    OUT/report.md and OUT/figures/*.png."""
    check_seed("--seed", seed)
    out = _checked_out(out, files=("claims.json", "report.md"), dirs=("figures", "records"))
    _threads()
    chosen = [p.upper() for p in (papers or [])]
    for p in chosen:
        if p not in PAPER_CHOICES:
            raise invalid("paper", p, "one of " + ", ".join(PAPER_CHOICES))
    if seed > 2**63 - 1 - 100:  # the seeds S .. S+N-1 must all be valid seeds
        raise invalid("--seed", seed, "an integer in [0, 2**63 - 101]")
    if not (1 <= seeds <= 100):
        raise invalid("--seeds", seeds, "an integer in [1, 100]")
    from ._lock import output_lock
    from .experiments import experiments_for

    exps = experiments_for(chosen)
    if not exps:
        raise invalid("papers", chosen or "all", "papers with registered experiments (see `falab list`)")
    seed_list = tuple(range(seed, seed + seeds))
    out.mkdir(parents=True, exist_ok=True)
    with output_lock(out):  # one writer per directory: a second reproduce into it is refused
        _reproduce_into(out, exps, quick, seed_list, chosen)


def _reproduce_into(out: Path, exps: list[Experiment], quick: bool, seed_list: tuple[int, ...],
                    chosen: list[str]) -> None:
    """The body of ``falab reproduce`` once the input is valid and the directory is ours."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from .experiments import RunContext, run_experiment
    from .report import ExperimentRecord, claim_rows, write_report
    from .runs import environment

    records: list[ExperimentRecord] = []
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), transient=not sys.stderr.isatty()) as progress:
        task = progress.add_task("reproduce", total=len(exps))
        for exp in exps:
            progress.update(task, description=f"{exp.id}: {exp.title[:50]}")

            def show(msg: str, e: Experiment = exp) -> None:
                progress.update(task, description=f"{e.id}: {msg[:60]}")

            ctx = RunContext(quick=quick, out_dir=out, seeds=seed_list, progress=show)
            records.append(run_experiment(exp, ctx))
            progress.advance(task)
            # Write after every experiment so that an interrupted run keeps what it produced.
            write_report(records, out, papers=chosen or list(PAPER_CHOICES), quick=quick, environment=environment(),
                         seeds=seed_list)
    rows = claim_rows(records)
    counts = {v: sum(r["verdict"] == v for r in rows) for v in ("confirmed", "qualified", "refuted", "inconclusive")}
    total = sum(r.seconds for r in records)
    typer.echo(f"{len(rows)} claims over {len(seed_list)} seed(s): {counts['confirmed']} confirmed, {counts['qualified']} "
               f"qualified, {counts['refuted']} refuted, {counts['inconclusive']} inconclusive ({total:.1f} s). "
               f"Wrote {out}/claims.json and {out}/report.md")
    failed = [r for r in records if r.error]
    if failed:
        _fail("; ".join(f"{r.experiment.id} failed: {r.error}" for r in failed), 1)


@app.command("list")
def list_() -> None:
    """List registered experiments and every claim ID of the catalog."""
    from .experiments import CLAIMS, EXPERIMENTS

    answered = {c: e.id for e in EXPERIMENTS.values() for c in e.claim_ids}
    typer.echo("Experiments:")
    for e in EXPERIMENTS.values():
        typer.echo(f"  {e.id:<14} {e.paper:<5} {e.title}  [{len(e.claim_ids)} claims]")
    typer.echo("Claims:")
    for cid, text in CLAIMS.items():
        typer.echo(f"  {cid:<26} {answered.get(cid, '(not registered)'):<14} {text}")


@app.command()
def bench(
    json_path: Annotated[Path | None, typer.Option("--json", help="also write the figures as a flat JSON object")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="fewer repeats and smaller ensembles")] = False,
    skip_nn: Annotated[bool, typer.Option("--skip-nn", help="skip the torch.nn layer benchmarks")] = False,
    with_biotorch: Annotated[bool, typer.Option(
        "--with-biotorch", help="also time BioTorch 0.0.16's layers, in the separate venv of --biotorch-python "
                                "(never installed by falab; without it, the command to make that venv is printed)")] = False,
    biotorch_python: Annotated[Path | None, typer.Option(
        "--biotorch-python", help="python of a separate venv holding the pinned, hash-checked biotorch==0.0.16")] = None,
    only: Annotated[str | None, typer.Option(
        "--only", help="comma-separated groups to run: core, nn, laws, flows, sweep (default: all)")] = None,
) -> None:
    """Benchmarks measured in one run, reported as ratios (never timed tests)."""
    from ._io import atomic_write_text, check_targets

    target = None
    if json_path is not None:  # checked before the benchmarks run, written atomically after
        if str(json_path).strip() in ("", "."):
            raise invalid("--json", str(json_path), "a file path")
        parent = check_out_dir(json_path.parent if str(json_path.parent) else Path("."), "--json directory")
        target = parent / json_path.name
        check_targets(parent, files=[json_path.name], name="--json")
    if biotorch_python is not None and not with_biotorch:
        raise invalid("--biotorch-python", str(biotorch_python), "to be used with --with-biotorch")
    _threads()
    from .bench import check_only, run_all

    check_only(only)
    results = run_all(quick=quick, skip_nn=skip_nn, echo=typer.echo, with_biotorch=with_biotorch,
                      biotorch_python=biotorch_python, only=only)
    if target is not None:
        parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, json.dumps(results, indent=2, sort_keys=True) + "\n")
        typer.echo(f"wrote {target}")


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="YAML training config for falab.nn (see configs/nn_*.yaml)")],
    out: Annotated[Path, typer.Option("--out", help="result directory")] = Path("results/train"),
    allow_large: Annotated[bool, typer.Option("--allow-large", help=ALLOW_LARGE_HELP)] = False,
    resume: Annotated[bool, typer.Option("--resume", help="keep the finished runs in --out, run the rest")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace earlier results in --out")] = False,
) -> None:
    """Train real PyTorch models with FA/DFA/sign-symmetry layers on offline data (digits, MNIST-1D, stdlib text).

    Each finished run is written at once (OUT/runs/); a run whose loss becomes non-finite is a failed run (exit 1).
    A non-empty --out is refused unless --resume or --overwrite; one process writes a directory at a time."""
    _threads()
    try:
        from .nn import load_config, train_from_config
        from .nn._train import check_train_size, estimate_memory, output_files
    except ImportError:
        _fail("falab.nn.train_from_config is not available in this build", 1)
    out = check_out_dir(out, "--out")
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    cfg = load_config(config)  # validate before the bar appears (bad input: one line, exit 2)
    out = _checked_out(out, files=tuple(output_files(cfg)), dirs=("runs",))
    check_train_size(cfg, allow_large=allow_large)
    _warn_size(estimate_memory(cfg)[0])
    grid = 0 if cfg.tune is None else len(cfg.tune.lr) * len(cfg.tune.momentum or [0]) * len(cfg.tune.seeds)
    total = len(cfg.datasets) * len(cfg.models) * len(cfg.rules) * (len(cfg.seeds) + grid)
    # The bar starts with the first run, after every check: an error before it stays one line on stderr.
    bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} runs"),
                   TimeElapsedColumn(), console=Console(stderr=True), transient=True)
    task = bar.add_task("training", total=total, start=False)
    started = [0]

    def progress(label: str) -> None:
        # called when a run starts: the previous one has finished
        if started[0] == 0:
            bar.start()
            bar.start_task(task)
        bar.update(task, completed=started[0], description=label)
        started[0] += 1

    if resume and overwrite:
        raise invalid("--resume", "with --overwrite", "one of --resume and --overwrite", quote=False)
    try:
        result = train_from_config(cfg, out, progress=progress, allow_large=allow_large, resume=resume,
                                   overwrite=overwrite)
        bar.update(task, completed=total)
    finally:
        if started[0]:  # stopping a bar that never started prints an empty line
            bar.stop()
    typer.echo(f"wrote {out}")
    if result["failed"]:
        for r in result["failed"]:
            typer.echo(f"failed run {r['dataset']}/{r['model']}/{r['rule']}/seed {r['seed']}"
                       f"{' (tuning)' if r.get('phase') == 'tune' else ''}: {r['message']}", err=True)
        _fail(f"{len(result['failed'])} run(s) failed (recorded in {out}/runs.json with status 'failed')", 1)


# What an interrupted command leaves in its output directory (the one line printed with exit code 130).
KEPT = {
    "run": "--out/metrics.csv with the rows recorded so far (manifest.json says status running; --resume reruns it)",
    "train": "--out/runs.json with every run finished before the interrupt (the summary is written at the end; "
             "--resume continues)",
    "reproduce": "--out/report.md and claims.json with every experiment finished before the interrupt",
    "bench": "the figures printed above (--json is written at the end)",
    "sweep": "--out/cells/ with every cell finished before the interrupt (a rerun skips them)",
}
_PATH_OPTIONS = ("--out", "--json", "--biotorch-python")


def _command(args: list[str]) -> str:
    return next((a for a in args if not a.startswith("-")), "")


def _empty_path_option(args: list[str]) -> str | None:
    """A path option given an empty value (Path('') would silently mean the current directory)."""
    for i, a in enumerate(args):
        for opt in _PATH_OPTIONS:
            if a == opt + "=" or (a == opt and i + 1 < len(args) and args[i + 1].strip() == ""):
                return opt
    return None


def _one_line(text: object) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= 600 else text[:597] + "..."


@app.command()
def laws(
    config: Annotated[Path, typer.Argument(help="YAML laws-atlas config (see configs/laws_atlas.yaml)")],
    out: Annotated[Path, typer.Option("--out", help="result directory")] = Path("results/laws"),
) -> None:
    """Discover every polynomial conservation law of each rule x model, with a completeness certificate:
    writes OUT/laws.md and OUT/laws.json."""
    _threads()
    out = check_out_dir(out, "--out")
    from .laws import load_atlas, run_atlas

    cfg = load_atlas(config)  # validated before anything runs (bad input: one line, exit 2)
    rows = run_atlas(cfg, out, echo=typer.echo)
    undecided = [r for r in rows if "error" in r]
    typer.echo(f"wrote {out}/laws.md and laws.json ({len(rows)} entries)")
    if undecided:
        _fail(f"{len(undecided)} entries not decided (see laws.md)", 1)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user mistakes exit 2 with one line ``error: Invalid ...`` (click's usage errors too,
    reduced to one line), failed runs exit 1, an interrupt exits 130 with what was kept; never a traceback for
    these."""
    args = list(sys.argv[1:] if argv is None else argv)
    code: int = 0
    try:
        empty = _empty_path_option(args)
        if empty:
            raise invalid(empty, "", "a path (an empty path would mean the current directory)")
        rv = app(args=args, prog_name="falab", standalone_mode=False)
        code = rv if isinstance(rv, int) else 0
    except FalabInputError as exc:
        typer.echo(f"error: {_one_line(exc)}", err=True)
        code = 2
    except typer.Abort:
        code = 130
    except KeyboardInterrupt:
        code = 130
    except typer.TyperException as exc:  # click's usage errors (unknown option, bad integer, missing argument)
        if type(exc).__name__ == "NoArgsIsHelpError":
            typer.echo(str(exc.format_message()), err=True)
        else:
            message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
            typer.echo(f"error: {_one_line(message)} (see falab {_command(args)} --help)".replace("falab  ", "falab "),
                       err=True)
        code = int(getattr(exc, "exit_code", 2))
    except MemoryError:
        typer.echo("error: out of memory (the estimate before the run was too low; try a smaller config)", err=True)
        code = 1
    except OSError as exc:  # writing results failed (disk full, permissions changed during the run)
        typer.echo(f"error: {_one_line(f'could not write results: {exc}')}", err=True)
        code = 1
    if code == 130:
        kept = KEPT.get(_command(args), "nothing")
        typer.echo(f"interrupted: kept {kept}", err=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
