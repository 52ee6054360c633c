"""``bench``: run | perf | list | show | check | verify | report.

User-fixable problems print a one-line ``bench: error: ...`` and exit 2; a run whose cells
failed their threat-model check exits 1; Ctrl-C exits 130 and keeps every finished cell.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from benchmark.run.interrupts import Terminated, interruptible
from foundation.errors import BenchError
from foundation.threat_models import DEFAULT_NORM, NORMS, check_norm

EXIT_USAGE, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_TERMINATED = 2, 1, 130, 143


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise BenchError(f"{message} (see {' '.join(['bench', *self.prog.split()[1:]])} --help)")


def _add_environment_options(parser: argparse.ArgumentParser) -> None:
    """Where and on what a command runs (shared by run, report and perf)."""
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, or auto (cuda when present)")
    parser.add_argument("--out", type=Path, default=Path("results"), help="results directory (default: results)")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="checkpoint cache (default: $BENCH_CACHE_DIR or the per-user cache)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="MNIST root holding MNIST/raw (default: $BENCH_DATA_DIR or the per-user cache)",
    )
    parser.add_argument("--no-download", action="store_true", help="never download MNIST (also: BENCH_OFFLINE=1)")


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by every command that trains and evaluates (run, report)."""
    parser.add_argument("--profile", default="quick", help="smoke | quick (default) | paper")
    parser.add_argument("--dataset", default="mnist", help="mnist (default), fashion-mnist, cifar10, or a plugin's")
    _add_environment_options(parser)
    parser.add_argument(
        "--n-test",
        type=int,
        default=None,
        help="test points per defense, 1 up to the test set's size (default: the profile's; a defense's own "
        "budget, ABS's, still caps it)",
    )
    parser.add_argument("--eot-samples", type=int, default=None, help="EOT draws per gradient for randomized defenses")
    parser.add_argument(
        "--repeats", type=int, default=None, help="repeated predictions for randomized defenses (all must be correct)"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.add_argument(
        "--max-cells",
        type=int,
        default=None,
        help="stop before computing when the plan has more cells than this (default 500)",
    )
    parser.add_argument("--executor", default="local", help="local (default: this process) or ray")
    parser.add_argument(
        "--ray-address", default=None, help="with --executor ray: a cluster's address, or 'auto' (default: start one)"
    )
    parser.add_argument("--workers", type=int, default=None, help="ray: cells in flight (default: its CPUs)")
    parser.add_argument(
        "--gpus-per-task", type=float, default=0.0, help="ray: GPUs per job and cell (fractions allowed)"
    )


def _add_run(subparsers: argparse._SubParsersAction) -> None:
    run = subparsers.add_parser("run", help="train (or load) defenses and evaluate the attack matrix")
    run.add_argument(
        "--defenses", default="all", help="comma-separated defense specs (name or name:key=value), or 'all'"
    )
    run.add_argument("--attacks", default="fgsm,pgd,deepfool", help="comma-separated attack specs, or 'all'")
    run.add_argument("--eps", default=None, help="epsilons: list 0.1,0.3 or range 0:0.3:0.1 (default: profile's)")
    run.add_argument(
        "--norm",
        default="linf",
        help=(
            "threat model of the ε-bounded attacks: linf (default), l2, l1 or l0 (ε counts changed pixels, all "
            "channels of a pixel together); default ε: the dataset's list for that norm"
        ),
    )
    run.add_argument("--dry-run", action="store_true", help="print the plan (jobs, cells, estimates); compute nothing")
    run.add_argument(
        "--save-adversarials",
        action="store_true",
        help="store each cell's adversarial examples in OUT/adversarials/ (sha256 in its record; see bench verify)",
    )
    _add_run_options(run)


def _add_perf(subparsers: argparse._SubParsersAction) -> None:
    perf = subparsers.add_parser(
        "perf", help="time the harness against hand-written loops and other libraries (writes perf.csv/.md)"
    )
    perf.add_argument(
        "--sections",
        default=None,
        help=(
            "subset of attacks,deepfool,worst,decision,quantized,sparse,autoattack,training,abs,startup,scale,run "
            "(default: attacks,deepfool,worst,decision,training,abs,startup)"
        ),
    )
    perf.add_argument("--repeats", type=int, default=5, help="timed rounds per task (median reported; default 5)")
    perf.add_argument("--batch-size", type=int, default=256, help="images per attacked batch (default 256)")
    perf.add_argument("--dataset", default="mnist", help="mnist (default), fashion-mnist, cifar10, or a plugin's")
    perf.add_argument(
        "--quick-check", action="store_true", help="tiny training and ABS budgets: checks that it runs (for tests)"
    )
    perf.add_argument(
        "--n-test", type=int, default=None, help="test points of the `bench run`s the run and scale sections time"
    )
    _add_environment_options(perf)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="bench", description="Adversarial-robustness benchmark harness")
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_run(subparsers)
    _add_perf(subparsers)
    subparsers.add_parser("list", help="list registered defenses and attacks")
    show = subparsers.add_parser("show", help="print the leaderboard of a results directory")
    show.add_argument("--out", type=Path, default=Path("results"))
    report = subparsers.add_parser(
        "report", help="rewrite leaderboard.csv/.md from the store, or run and write a paper's reproduction page"
    )
    report.add_argument("name", nargs="?", default="leaderboard", choices=sorted(REPORTS), help="what to write")
    report.add_argument(
        "--stored-only",
        action="store_true",
        help="paper reports: write the page from the cells stored in OUT, computing nothing (missing cells show –)",
    )
    _add_run_options(report)
    compare = subparsers.add_parser(
        "compare", help="paired test of two defenses on the same test points (exact McNemar on per-point results)"
    )
    compare.add_argument("a", help="a defense label")
    compare.add_argument("b", help="another defense label")
    compare.add_argument("--eps", type=float, default=None, help="ε (default: the largest both were attacked at)")
    compare.add_argument("--attack", default="worst", help="an attack label (default: worst, the per-point worst case)")
    compare.add_argument("--out", type=Path, default=Path("results"), help="results directory (default: results)")
    compare.add_argument("--dataset", default=None, help="the dataset, when the store holds several")
    compare.add_argument("--profile", default=None, help="the profile, when the store holds several")
    compare.add_argument(
        "--norm", default=None, help="the threat model (linf, l2, l1, l0), when the store holds several at that ε"
    )
    check = subparsers.add_parser("check", help="compare a run's leaderboard with a baseline (exit 1 on regression)")
    check.add_argument("--baseline", type=Path, required=True, help="baseline leaderboard CSV")
    check.add_argument("--run", type=Path, default=Path("results"), help="results directory of the run")
    check.add_argument("--floor", type=float, default=0.02, help="smallest tolerated drop (absolute, default 0.02)")
    check.add_argument("--strict", action="store_true", help="also fail when any row of the run carries a sanity flag")
    verify = subparsers.add_parser(
        "verify", help="re-check the adversarial examples saved by run --save-adversarials (exit 1 on a failure)"
    )
    verify.add_argument("--out", type=Path, default=Path("results"), help="results directory (default: results)")
    verify.add_argument("--cell", default=None, help="only this cell key (default: every cell with saved examples)")
    verify.add_argument(
        "--cache-dir", type=Path, default=None, help="checkpoint cache (default: as bench run: $BENCH_CACHE_DIR, ...)"
    )
    verify.add_argument(
        "--data-dir", type=Path, default=None, help="dataset root (default: $BENCH_DATA_DIR or the per-user cache)"
    )
    verify.add_argument("--no-download", action="store_true", help="never download the dataset")
    verify.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, or auto (cuda when present)")
    return parser


def _bounded(value: int, flag: str, low: int = 1, high: int | None = None) -> int:
    from benchmark.config.run_config import check_bounds

    check_bounds(value, low, high, flag)
    return value


def _run_config(args: argparse.Namespace, defenses: str = "cnn", attacks: str | tuple = "fgsm", eps: str | None = None):
    from benchmark.select import run_config

    return run_config(
        defenses=defenses,
        attacks=attacks,
        epsilons=eps,
        profile=args.profile,
        dataset=args.dataset,
        norm=getattr(args, "norm", DEFAULT_NORM),
        executor=args.executor,
        seed=args.seed,
        device=args.device,
        out_dir=args.out,
        cache_dir=args.cache_dir,
        data_dir=args.data_dir,
        download=not args.no_download,
        eot_samples=args.eot_samples,
        prediction_repeats=args.repeats,
        progress=not args.no_progress,
        **({"max_cells": args.max_cells} if args.max_cells is not None else {}),
        ray_address=args.ray_address,
        workers=args.workers,
        gpus_per_task=args.gpus_per_task,
        save_adversarials=getattr(args, "save_adversarials", False),
        n_test=args.n_test,
    )


def _interrupted(error: KeyboardInterrupt, store_dir: Path) -> int:
    """Rewrite the leaderboard from what is stored, say what was kept, and exit 130 (SIGINT) or 143 (SIGTERM)."""
    from benchmark.results.frame import records_to_frame
    from benchmark.results.leaderboard import write_leaderboard
    from benchmark.store.result_store import ResultStore

    # A second Ctrl-C or SIGTERM must not cut the rewrite short.
    previous = {number: signal.signal(number, signal.SIG_IGN) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        store = ResultStore(store_dir)
        records = store.records()
        kept = f"{len(records)} finished cells are kept in {store_dir}"
        if records:
            with store.writer_lock():
                write_leaderboard(records_to_frame(records), store_dir)
            kept += " and its leaderboard is rewritten from them"
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    what = "terminated (SIGTERM)" if isinstance(error, Terminated) else "interrupted"
    print(f"\nbench: {what}; {kept}. Rerun the same command to resume.", file=sys.stderr)
    return EXIT_TERMINATED if isinstance(error, Terminated) else EXIT_INTERRUPTED


def _cmd_run(args: argparse.Namespace) -> int:
    from benchmark.publish.site import publish_site
    from benchmark.results.leaderboard import profile_tables
    from benchmark.run.adaptive import ADAPTIVE
    from benchmark.run.runner import run_benchmark

    names = [item.strip() for item in args.attacks.split(",")]
    adaptive = ADAPTIVE in names
    others = ",".join(name for name in names if name != ADAPTIVE)
    # ``adaptive`` alone selects no attack of its own: the protocol chooses them per defense.
    config = _run_config(args, args.defenses, others if others or not adaptive else (), args.eps)
    profile = config.profile
    if args.dry_run:
        from benchmark.run.dry_run import describe

        for part in _adaptive_first_stages(config) if adaptive else [config]:
            print(describe(part))
        return 0
    try:
        if adaptive:
            from benchmark.run.adaptive import run_adaptive

            result = run_adaptive(config)
        else:
            result = run_benchmark(config)
        publish_site(args.out, result.frame)
    except KeyboardInterrupt as error:
        return _interrupted(error, args.out)
    frame = result.frame
    labels = [s.label for s in config.attacks]
    selected = frame[
        (frame["profile"] == profile.name)
        & frame["defense"].isin([s.label for s in config.defenses])
        & (frame["attack"].isin([*labels, "worst"]) | adaptive)
        & (frame["eps"].round(10).isin([round(e, 10) for e in config.epsilons]) | frame["eps"].isna())
    ]
    if config.n_test is not None:  # not the rows of the store's other test sizes
        from benchmark.run.plan import Planner

        selected = Planner(config).on_its_test_points(selected)
    if not selected.empty:
        tables = profile_tables(selected)
        for heading, table in tables["sections"]:
            if "macro-F1" not in heading:
                print(f"{heading}\n{table}\n")
        print("Defenses\n" + tables["defenses"])
    for line in result.lines:
        print(line)
    for line in _masked_warnings(selected, adaptive):
        print(line, file=sys.stderr)
    print(
        f"\n{result.computed} cells computed; leaderboard written to {args.out}/leaderboard.csv and "
        f"{args.out}/leaderboard.md"
    )
    for failure in result.failures:
        print(f"bench: cell {failure.defense} × {failure.attack} failed: {failure.message}", file=sys.stderr)
    return EXIT_FAILED if result.failures else 0


def _adaptive_first_stages(config):
    """The first stage of the adaptive protocol, one config per defense (what ``--dry-run`` shows)."""
    from benchmark.run.adaptive import first_stage, with_choices
    from benchmark.run.build import Build

    build = Build.of(config)
    return [
        with_choices(config, spec, first_stage(build.defense(spec), config.norm, config.profile.name))
        for spec in config.defenses
    ]


def _masked_warnings(frame, adaptive: bool) -> list[str]:
    """One line per defense and threat model the ``masked`` flag fires on: its gradients mislead gradient attacks;
    the label-only attacks named are those that run in that threat model."""
    from benchmark.run.adaptive import label_only_in

    flagged = frame[frame["flags"].fillna("").str.contains("masked") & frame["threat_model"].isin(NORMS)]
    lines = []
    for (defense, norm), share in flagged.groupby(["defense", "threat_model"], sort=True)["gradient_masking_share"]:
        added = ", ".join(label_only_in(str(norm)))
        tail = (
            f"the adaptive protocol added {added} at full budget"
            if adaptive
            else f"gradient attacks can report it robust; run --attacks adaptive (adds {added}) or add BPDA"
        )
        lines.append(
            f"bench: warning: {defense} is flagged masked (input gradients zero or missing on "
            f"{100 * share.max():.0f} % of points): {tail}"
        )
    return lines


def _cmd_list(_: argparse.Namespace) -> int:
    from foundation.catalog import REGISTRIES, read_catalog  # the registries' catalog: no torch to import

    for title, kind in (("Defenses", "defense"), ("Attacks", "attack")):
        print(f"{title}:")
        entries = read_catalog(kind, *REGISTRIES[kind])
        width = max(len(entry.name) for entry in entries)
        for entry in entries:
            alias = f" (alias of {entry.plugin_name})" if entry.name != entry.plugin_name else ""
            print(f"  {entry.name:<{width}}  {entry.description}{alias}")
        print()
    return 0


def _load_store(out: Path):
    from benchmark.results.frame import load
    from benchmark.store.result_store import ResultStore

    store = ResultStore(out)
    try:
        return load(out, store)
    finally:
        _say_skipped(store)


def _writable_store(out: Path):
    """The leaderboard frame of the store in ``out``, which a report then writes into: refused in one line
    when ``out`` cannot be written or holds a folder where a file goes (or the other way round)."""
    from benchmark.store.files import ensure_writable
    from benchmark.store.result_store import check_layout

    frame = _load_store(out)
    ensure_writable(out, "--out")
    check_layout(out)
    return frame


def _say_skipped(store) -> None:
    """One line on stderr naming the invalid records a reader left out (a writer moves them aside)."""
    if store.skipped:
        reasons = "; ".join(map(str, store.skipped[:3])) + ("; …" if len(store.skipped) > 3 else "")
        print(
            f"bench: warning: skipped {len(store.skipped)} invalid record(s) in {store.root}: {reasons} "
            "(the next `bench run` moves them to rejected/ and recomputes their cells)",
            file=sys.stderr,
        )


def _cmd_show(args: argparse.Namespace) -> int:
    from benchmark.results.leaderboard import markdown

    print(markdown(_load_store(args.out)))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    if args.stored_only and not args.name.startswith("paper"):
        raise BenchError(f"--stored-only applies to paper000 and paper001 only; {args.name} always reads the store")
    if args.name == "leaderboard":
        from benchmark.results.leaderboard import write_leaderboard

        csv_path, md_path = write_leaderboard(_writable_store(args.out), args.out)
        print(f"wrote {csv_path} and {md_path}")
        return 0
    if args.name == "json":
        paths = importlib.import_module(REPORTS["json"]).report_json(args.out, _writable_store(args.out))
        print(f"wrote {len(paths)} RobustBench-style JSON file(s) under {args.out / 'json'}")
        return 0
    if args.name == "attacks":
        (path,) = importlib.import_module(REPORTS["attacks"]).report_attacks(args.out, _writable_store(args.out))
        print(f"wrote {path}")
        return 0
    if args.name == "html":
        paths = importlib.import_module(REPORTS["html"]).report_html(args.out, _writable_store(args.out))
        from benchmark.publish.site.build import ATTACKS_PAGE

        pages = sum(path.stem != ATTACKS_PAGE for path in paths[1:])
        print(
            f"wrote {paths[0]} and {pages} defense page(s) beside it"
            + (" with attacks.html" if pages < len(paths) - 1 else "")
        )
        return 0
    config = _run_config(args)
    command = f"bench report {args.name} --profile {args.profile} --seed {args.seed}"
    if args.n_test is not None:
        command += f" --n-test {args.n_test}"
    if args.stored_only:
        command += " --stored-only"
    try:
        path = importlib.import_module(REPORTS[args.name]).report(config, command, compute=not args.stored_only)
    except KeyboardInterrupt as error:
        return _interrupted(error, args.out)
    print(f"wrote {path}")
    return 0


#: Report name -> the module whose ``report(config, command)`` runs its matrix and writes its page
#: (``json``: whose ``report_json(out, frame)`` writes RobustBench-style files from the store; ``attacks``: whose
#: ``report_attacks(out, frame)`` writes ``OUT/attacks.md``, the attack-quality report; ``html``: whose
#: ``report_html(out, frame)`` renders the store as a static site in ``OUT/site``).
REPORTS = {
    "leaderboard": None,
    "json": "benchmark.publish.robustbench_json",
    "attacks": "benchmark.publish.attack_report",
    "html": "benchmark.publish.site",
    "paper000": "benchmark.reports.paper000",
    "paper001": "benchmark.reports.paper001",
}


def _read_csv(path: Path, what: str):
    """A leaderboard CSV, checked: the columns ``bench check`` needs, and a valid value in each of them."""
    import csv

    import pandas as pd

    from benchmark.results.regression import REQUIRED, table_problem

    try:
        frame = pd.read_csv(path)
        text = pd.read_csv(path, dtype=str, keep_default_na=False)
        with path.open(newline="", encoding="utf-8", errors="replace") as handle:
            reader, lines, end = csv.reader(handle), [], 0
            for row in reader:  # the line where each record starts (quoted fields may span lines)
                if row:
                    lines.append(end + 1)
                end = reader.line_num
    except FileNotFoundError:
        raise BenchError(f"{what} {path} does not exist") from None
    except (ValueError, pd.errors.ParserError, csv.Error) as error:
        raise BenchError(f"{what} {path} is not a leaderboard CSV ({str(error).strip().splitlines()[0]})") from None
    except OSError as error:
        raise BenchError(f"{what} {path} cannot be read ({error.strerror or error})") from None
    missing = [column for column in REQUIRED if column not in frame.columns]
    if missing:
        raise BenchError(f"{what} {path} lacks columns {', '.join(missing)}")
    problem = table_problem(text)
    if problem:
        row, column, wrong = problem
        line = lines[row + 1] if len(lines) == len(text) + 1 else row + 2
        raise BenchError(
            f"{what} {path} line {line}, column {column}: {wrong}; correct that value, or write the file anew "
            "(a run's leaderboard.csv, e.g. from `bench report leaderboard --out DIR`)"
        )
    return frame


def _without_invalid(run, invalid_keys: set[str]):
    """The run's leaderboard without the rows of invalid records (``invalid_keys``) nor the worst-case rows
    derived from them: numbers the store no longer vouches for are not compared (they count as missing)."""
    if not invalid_keys or "cell_key" not in run:
        return run
    from benchmark.results.columns import GROUP, WORST

    invalid = run["cell_key"].isin(invalid_keys)
    columns = [column for column in GROUP if column in run]
    derived = run[columns].merge(run.loc[invalid, columns].drop_duplicates(), how="left", indicator=True)
    tainted = (run["attack"] == WORST).to_numpy() & (derived["_merge"] == "both").to_numpy()
    return run[~invalid.to_numpy() & ~tainted]


def _cmd_check(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from benchmark.results.regression import regressions

    if not 0 <= args.floor <= 1:
        raise BenchError(f"--floor must lie in [0, 1]; got {args.floor}")
    baseline = _read_csv(args.baseline, "baseline")
    if baseline.empty:
        raise BenchError(
            f"baseline {args.baseline} has no rows, so it would pass any run; point --baseline at a leaderboard"
        )
    run = _read_csv(args.run / "leaderboard.csv" if args.run.is_dir() else args.run, "run leaderboard")
    if (args.run / "cells").is_dir():
        from benchmark.store.result_store import ResultStore

        store = ResultStore(args.run)
        store.records()
        _say_skipped(store)
        run = _without_invalid(run, {skipped.path.stem for skipped in store.skipped})
    report = regressions(baseline, run, floor=args.floor)
    if not report.regressions.empty:
        print("Regressions (robust accuracy below baseline by more than the tolerance):")
        print(tabulate(report.regressions, headers="keys", tablefmt="github", floatfmt=".3f", showindex=False))
    if not report.missing.empty:
        print("Cells in the baseline but missing from the run:")
        print(tabulate(report.missing, headers="keys", tablefmt="github", showindex=False))
    print(f"{report.compared} cells compared, {len(report.regressions)} regressions, {len(report.missing)} missing")
    flagged = run[run["flags"].fillna("") != ""] if "flags" in run else run.iloc[0:0]
    if args.strict and not flagged.empty:
        print("Sanity flags (--strict):")
        print(
            tabulate(
                flagged[["profile", "defense", "attack", "eps", "flags"]],
                headers="keys",
                tablefmt="github",
                showindex=False,
            )
        )
    return 0 if report.ok and not (args.strict and not flagged.empty) else EXIT_FAILED


def _cmd_verify(args: argparse.Namespace) -> int:
    from benchmark.run.verify import verify_store
    from benchmark.store.result_store import ResultStore

    store = ResultStore(args.out)
    try:
        verdicts = verify_store(store, args.cell, args.cache_dir, args.data_dir, args.device, not args.no_download)
    finally:
        _say_skipped(store)
    for verdict in verdicts:
        print(verdict.line())
    failed = sum(verdict.problem is not None for verdict in verdicts)
    print(f"{len(verdicts)} cells verified, {failed} failed")
    return EXIT_FAILED if failed else 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from benchmark.results.paired import check_labels, compare

    frame = _load_store(args.out)
    for column in ("dataset", "profile"):
        if getattr(args, column) is not None:
            frame = frame[frame[column] == getattr(args, column)]
    if args.norm is not None:
        frame = frame[frame["threat_model"] == check_norm(args.norm)]
    check_labels(frame, args.a, args.b, args.attack)
    eps = args.eps
    if eps is None:
        rows = frame[(frame["attack"] == args.attack) & frame["defense"].isin([args.a, args.b])]
        shared = rows.groupby("eps")["defense"].nunique()
        if not (shared == 2).any():
            raise BenchError(f"{args.a!r} and {args.b!r} share no ε under {args.attack!r}; pass --eps or --attack")
        eps = float(shared[shared == 2].index.max())
    print("\n".join(compare(frame, args.a, args.b, eps, args.attack).lines()))
    return 0


def _cmd_perf(args: argparse.Namespace) -> int:
    from benchmark.config.run_config import MAX_SEED
    from benchmark.perf.suite import parse_sections, run_perf
    from benchmark.perf.workbench import PerfSettings
    from benchmark.run.environment import resolve_cache_dir, resolve_device
    from benchmark.store.files import ensure_writable

    sections = parse_sections(args.sections, args.dataset)
    settings = PerfSettings(
        device=resolve_device(args.device),
        cache_dir=resolve_cache_dir(args.cache_dir),
        data_dir=args.data_dir,
        download=not args.no_download,
        seed=_bounded(args.seed, "--seed", 0, MAX_SEED),
        repeats=_bounded(args.repeats, "--repeats", 1, 1000),
        batch_size=_bounded(args.batch_size, "--batch-size", 1, 100_000),
        quick_check=args.quick_check,
        dataset=args.dataset,
        n_test=None if args.n_test is None else _bounded(args.n_test, "--n-test"),
    )
    ensure_writable(args.out, "--out")
    ensure_writable(settings.cache_dir, "--cache-dir")
    command = (
        f"bench perf --sections {','.join(sections)} --repeats {settings.repeats} --batch-size {settings.batch_size} "
        f"--device {args.device} --dataset {args.dataset}"
        + (" --quick-check" if args.quick_check else "")
        + (f" --n-test {args.n_test}" if args.n_test is not None else "")
    )
    try:
        csv_path, md_path = run_perf(settings, sections, args.out, command)
    except KeyboardInterrupt as error:
        print("\nbench: interrupted; the sections already measured are in perf.csv/perf.md", file=sys.stderr)
        return EXIT_TERMINATED if isinstance(error, Terminated) else EXIT_INTERRUPTED
    print(md_path.read_text())
    print(f"wrote {csv_path} and {md_path}")
    return 0


COMMANDS = {
    "run": _cmd_run,
    "perf": _cmd_perf,
    "list": _cmd_list,
    "show": _cmd_show,
    "report": _cmd_report,
    "check": _cmd_check,
    "verify": _cmd_verify,
    "compare": _cmd_compare,
}


def main(argv: Sequence[str] | None = None) -> int:
    on_main_thread = threading.current_thread() is threading.main_thread()
    with interruptible() if on_main_thread else contextlib.nullcontext():
        try:
            args = build_parser().parse_args(argv)
            return COMMANDS[args.command](args)
        except BenchError as error:
            print(f"bench: error: {error}", file=sys.stderr)
            return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
