"""Command line: ``falab run | reproduce | list | bench | train``.

User mistakes (bad config, unknown paper, bad option value) print one line ``Invalid <name>: <value> (expected ...)``
and exit with code 2, without a traceback; a diverging run exits with code 1 after writing what it recorded.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from ._checks import FalabInputError, invalid

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="falab: learning rules of neural networks (BP, FA, DFA, FA*, sign symmetry) — exact flows, "
                       "conserved quantities, implicit bias, and the papers' claims reproduced.")


def _threads() -> None:
    """One torch thread unless FALAB_THREADS says otherwise: measured here, small-matrix work with 2 threads ran
    3-1000x slower (see `falab bench`)."""
    import torch

    n = os.environ.get("FALAB_THREADS", "1")
    if not n.isdigit() or int(n) < 1:
        raise invalid("FALAB_THREADS", n, "a positive integer")
    torch.set_num_threads(int(n))


def _fail(msg: str, code: int) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(code)


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="YAML run config (see configs/)")],
    out: Annotated[Path, typer.Option("--out", help="result directory")] = Path("results/run"),
) -> None:
    """Run one config: writes OUT/manifest.json, OUT/metrics.csv and OUT/figures/."""
    from .dynamics import Diverged
    from .runs import load_config
    from .runs import run as run_config

    _threads()
    cfg = load_config(config)
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn(f"running {config.name}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeElapsedColumn(), console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("run", total=1.0)
        try:
            result = run_config(cfg, out, progress=lambda f: bar.update(task, completed=f))
        except Diverged as exc:
            bar.stop()
            _fail(str(exc), 1)
    loss = result.trajectory.metrics.get("loss")
    final = f"; final loss {float(loss[-1].max()):.4g}" if loss else ""
    typer.echo(f"wrote {out}/manifest.json, metrics.csv ({len(result.trajectory.times)} records){final}")


PAPER_CHOICES = ("P000", "P002", "P003", "P004", "NN")


@app.command()
def reproduce(
    papers: Annotated[list[str] | None, typer.Argument(help="papers to reproduce: P000 P002 P003 P004 NN (default: all)")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="shrunk sizes and horizons; the same decisions")] = False,
    out: Annotated[Path, typer.Option("--out", help="output directory")] = Path("results/reproduce"),
    seed: Annotated[int, typer.Option(help="base seed: claims are decided over seeds S, S+1, ...")] = 0,
    seeds: Annotated[int, typer.Option("--seeds", help="how many seeds every claim is decided over")] = 3,
) -> None:
    """Run the registered experiments, decide every claim over several seeds, and write OUT/claims.json,
    OUT/report.md and OUT/figures/*.png."""
    _threads()
    chosen = [p.upper() for p in (papers or [])]
    for p in chosen:
        if p not in PAPER_CHOICES:
            raise invalid("paper", p, "one of " + ", ".join(PAPER_CHOICES))
    if not (0 <= seed < 2**63 - 100):
        raise invalid("seed", seed, "an integer in [0, 2**63 - 100)")
    if not (1 <= seeds <= 100):
        raise invalid("seeds", seeds, "an integer in [1, 100]")
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from .experiments import RunContext, experiments_for, run_experiment
    from .report import ExperimentRecord, claim_rows, write_report
    from .runs import environment

    exps = experiments_for(chosen)
    if not exps:
        raise invalid("papers", chosen or "all", "papers with registered experiments (see `falab list`)")
    seed_list = tuple(range(seed, seed + seeds))
    out.mkdir(parents=True, exist_ok=True)
    records: list[ExperimentRecord] = []
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), transient=not sys.stderr.isatty()) as progress:
        task = progress.add_task("reproduce", total=len(exps))
        for exp in exps:
            progress.update(task, description=f"{exp.id}: {exp.title[:50]}")
            ctx = RunContext(quick=quick, out_dir=out, seeds=seed_list,
                             progress=lambda msg, e=exp: progress.update(task, description=f"{e.id}: {msg[:60]}"))
            records.append(run_experiment(exp, ctx))
            progress.advance(task)
            # Write after every experiment so that an interrupted run keeps what it produced.
            write_report(records, out, papers=chosen or list(PAPER_CHOICES), quick=quick, environment=environment(),
                         seeds=seed_list)
    rows = claim_rows(records)
    counts = {v: sum(r["verdict"] == v for r in rows) for v in ("confirmed", "qualified", "refuted", "inconclusive")}
    total = sum(r.seconds for r in records)
    typer.echo(f"{len(rows)} claims over {seeds} seed(s): {counts['confirmed']} confirmed, {counts['qualified']} "
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
        "--with-biotorch", help="pip install biotorch==0.0.16 --no-deps if missing and time its layers alongside")] = False,
) -> None:
    """Benchmarks measured in one run, reported as ratios (never timed tests)."""
    _threads()
    from .bench import run_all

    results = run_all(quick=quick, skip_nn=skip_nn, echo=typer.echo, with_biotorch=with_biotorch)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
        typer.echo(f"wrote {json_path}")


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="YAML training config for falab.nn (see configs/nn_*.yaml)")],
    out: Annotated[Path, typer.Option("--out", help="result directory")] = Path("results/train"),
) -> None:
    """Train real PyTorch models with FA/DFA/sign-symmetry layers on offline data (digits, MNIST-1D)."""
    _threads()
    try:
        from .nn import load_config, train_from_config
    except ImportError:
        _fail("falab.nn.train_from_config is not available in this build", 1)
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    cfg = load_config(config)  # validate before the bar appears (bad input: one line, exit 2)
    total = len(cfg.datasets) * len(cfg.models) * len(cfg.rules) * len(cfg.seeds)
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} runs"),
                  TimeElapsedColumn(), console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("training", total=total)
        started = [0]

        def progress(label: str) -> None:
            # called when a run starts: the previous one has finished
            bar.update(task, completed=started[0], description=label)
            started[0] += 1

        train_from_config(cfg, out, progress=progress)
        bar.update(task, completed=total)
    typer.echo(f"wrote {out}")


def main() -> None:
    """Console entry point: maps user mistakes to exit code 2 with a one-line message (click's own usage errors
    already exit with 2)."""
    try:
        app()
    except FalabInputError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
