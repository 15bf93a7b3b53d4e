"""Command line: ``python -m bench run | report | compare | tune | coverage | compact | list | models``.

User errors are one line and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

from bench import options, telemetry, tune
from bench.cache import default_cache_dir, open_cache
from bench.errors import UserError
from bench.files import os_reason
from bench.text import printable


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not argparse's usage block
        # argparse says "argument --timeout: MESSAGE"; bench.options' messages name their flag themselves
        flag, _, rest = message.partition(": ")
        if flag.startswith("argument ") and rest.startswith(flag.removeprefix("argument ")):
            message = rest
        self.exit(2, f"bench: error: {printable(message)}\n")


RESULTS_HELP = "results folder or URI: s3://bucket/prefix, file://, gs://, ... (default: results/)"


def _add_run(sub) -> None:
    p = sub.add_parser("run", help="run a suite and write results")
    p.set_defaults(handler=cmd_run)
    p.add_argument("--suite", help="suite name (see `list suites`) or path to a .toml file (default: smoke; with "
                   "--model: model, every runner and precision)")
    p.add_argument("--runners", type=options.csv, help="comma-separated runner names, replacing the suite's")
    p.add_argument("--models", type=options.csv, help="comma-separated zoo model names, replacing the suite's")
    p.add_argument("--model", type=Path, help="your own ONNX file, replacing the suite's models")
    p.add_argument("--torch", dest="torch_factory", type=options.torch_factory, metavar="FILE.py:FACTORY",
                   help="your own PyTorch model: a function returning an nn.Module (or (module, example_inputs)), "
                   "in a file or a package.module; exported once to ONNX for the ONNX runtimes, the module itself "
                   "for PyTorch's own paths")
    p.add_argument("--shape", type=options.shape, action="append", default=[],
                   help="NAME:1x3x224x224 for a dynamic input of --model, or an input of --torch's module")
    p.add_argument("--threads", type=options.int_csv, help="comma-separated thread counts, replacing the suite's")
    p.add_argument("--precisions", type=options.csv,
                   help="comma-separated precisions (fp32,int8,...), replacing the suite's")
    p.add_argument("--batch-sizes", type=options.int_csv, help="comma-separated batch sizes, replacing the suite's")
    p.add_argument("--scenarios", type=options.csv,
                   help="latency, throughput, server, offline (the last two: MLPerf LoadGen), replacing the suite's")
    p.add_argument("--devices", type=options.csv, help="comma-separated devices (cpu,cuda,...), replacing the suite's")
    p.add_argument("--versions", type=options.versions, metavar="DIST==V1,V2",
                   help="runtime releases side by side, each in an environment of its own made with uv before "
                   "timing (onnxruntime==1.31.0,1.32.0), replacing the suite's versions")
    p.add_argument("--results", type=options.results, default="results", help=RESULTS_HELP)
    p.add_argument("--cache-dir", type=Path, help="model cache (default: $BENCH_CACHE_DIR or ~/.cache/bench)")
    p.add_argument("--timeout", type=options.timeout, help="per-case deadline in seconds, replacing the suite's")
    p.add_argument("--max-memory", type=options.max_memory, metavar="MB",
                   help="per-case address-space cap; past it: status oom")
    p.add_argument("--dry-run", action="store_true", help="print the plan and run nothing")
    p.add_argument("--verbose", action="store_true", help="print every case, impossible ones too, and the full table")
    p.add_argument("--resume", metavar="RUN_ID", help="finish an interrupted run: only its missing cases run")
    p.add_argument("--retry-failed", action="store_true",
                   help="convert again what a converter refused before (by default its cached failure is reused)")
    p.add_argument("--no-convert-ahead", dest="convert_ahead", action="store_false",
                   help="convert inside each case's worker, one case at a time, instead of every artifact first, "
                   "several at a time, before timing")
    p.add_argument("--profile", action="store_true",
                   help="after each case's timed loop, a per-op pass with the runtime's own profiler (the ops table)")
    p.add_argument("--strict", action="store_true", help="refuse to run on a noisy machine (governor, load, ...)")
    p.add_argument("--cooldown", type=options.cooldown, default=0.0, metavar="S", help="idle seconds before each case")
    p.add_argument("--cooldown-until", type=options.cooldown_until, metavar="CELSIUS",
                   help="then wait until the hottest thermal zone is under CELSIUS (bounded by --cooldown-max)")
    p.add_argument("--cooldown-max", type=options.cooldown_max, default=300.0, metavar="S",
                   help="longest --cooldown-until wait per case (default 300)")
    p.add_argument("--cores", type=options.csv, help="all, big, little and/or prime (a cluster to pin each case to), "
                   "replacing the suite's")
    p.add_argument("--shard", type=options.shard, metavar="I/N",
                   help="run only shard I of N (1-based), split by case key")
    p.add_argument("--machine-label", default="", help="tag the run with this machine's hardware label")


def _add_report(sub) -> None:
    p = sub.add_parser("report", help="write a static HTML report, summary.md and CSV tables")
    p.set_defaults(handler=cmd_report)
    p.add_argument("--results", type=options.results, default="results", help=RESULTS_HELP)
    p.add_argument("--out", type=Path, default=Path("reports/latest"), help="report folder (default: reports/latest)")
    p.add_argument("--baseline", default="onnxruntime", help="runner that speedups are relative to")
    p.add_argument("--run", dest="run_id", metavar="RUN_ID", help="only this run (default: latest row per case)")


def _add_compare(sub) -> None:
    p = sub.add_parser("compare", help="compare two runs case by case; exit code 1 on a regression")
    p.set_defaults(handler=cmd_compare)
    p.add_argument("base", metavar="BASE", nargs="?", help="run id in --results, or a results folder (its latest run)")
    p.add_argument("new", metavar="NEW", nargs="?", help="run id in --results, or a results folder (its latest run)")
    p.add_argument("--each-machine", action="store_true",
                   help="instead of BASE NEW: every machine's latest run of each suite against its previous one")
    p.add_argument("--markdown-dir", type=Path, default=Path("compare"), metavar="DIR",
                   help="with --each-machine: one markdown table per machine and suite here (default: compare/)")
    p.add_argument("--results", type=options.results, default="results", help=RESULTS_HELP)
    p.add_argument("--threshold", type=options.threshold, default="5%",
                   help="relative change of the median that counts (default: 5%%)")
    p.add_argument("--markdown", type=Path, metavar="FILE", help="write the markdown table here, not to stdout")
    p.add_argument("--json", type=Path, metavar="FILE", help="github-action-benchmark customSmallerIsBetter JSON")
    p.add_argument("--allow-env-diff", action="store_true",
                   help="compare cases whose machine or model bytes differ (runtime upgrades are always compared)")
    p.add_argument("--by", choices=["run", "version"], default="run",
                   help="version: the releases one run ran side by side (--versions), each against the one before; "
                   "BASE, if given, names the run (default: the latest)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="bench", description="Benchmark ONNX inference runtimes honestly.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_run(sub)
    _add_report(sub)
    _add_compare(sub)
    tune.add_parser(sub, cmd_tune)  # bench/tune.py: its flags beside its logic
    cov = sub.add_parser("coverage", help="model x runner x precision: what runs, what fails, what is wrong")
    cov.set_defaults(handler=cmd_coverage)
    cov.add_argument("--results", type=options.results, default="results", help=RESULTS_HELP)
    cov.add_argument("--run", dest="run_id", metavar="RUN_ID", help="only this run (default: latest row per case)")
    compact = sub.add_parser("compact", help="merge each complete run's per-case files into one file per run")
    compact.set_defaults(handler=cmd_compact)
    compact.add_argument("--results", type=options.results, default="results", help=RESULTS_HELP)
    lst = sub.add_parser("list", help="list runners, suites or models")
    lst.set_defaults(handler=cmd_list)
    lst.add_argument("what", choices=["runners", "suites", "models"])
    models = sub.add_parser("models", help="list the model zoo, or `models build` to fill the cache ahead of a run")
    models.set_defaults(handler=cmd_models)
    models.add_argument("action", nargs="?", choices=["list", "build"], default="list")
    models.add_argument("--models", type=options.csv, help="comma-separated zoo model names (default: all)")
    models.add_argument("--cache-dir", type=Path, help="model cache (default: $BENCH_CACHE_DIR or ~/.cache/bench)")
    return parser


PLAN_FLAGS = ("runners", "models", "model", "torch_factory", "threads", "precisions", "batch_sizes", "scenarios",
              "devices", "timeout", "max_memory", "cache_dir", "dry_run", "shard", "cores", "versions",
              "profile")


def _plan(args: argparse.Namespace, retry_failed: bool):
    """The run's plan from its flags (the command line's, or with --resume the run's stored ones)."""
    from bench.plan import Overrides, plan
    from bench.registry import Registry
    from bench.suite import load_suite, with_axes

    options.check_model_flags(args.model, args.models, args.shape, args.torch_factory)
    suite_name = args.suite or ("model" if args.model or args.torch_factory else "smoke")
    suite = with_axes(load_suite(suite_name), precisions=args.precisions, batch_sizes=args.batch_sizes,
                      scenarios=args.scenarios, devices=args.devices, cores=args.cores, threads=args.threads,
                      versions=args.versions)
    overrides = Overrides(  # --threads replaced the suite's above: checked against a suite file's bounds
        models=args.models, runners=args.runners, user_model=args.model, torch_factory=args.torch_factory,
        shapes=dict(args.shape), timeout_s=args.timeout, max_memory_mb=args.max_memory, shard=args.shard,
        profile=args.profile,
    )
    registry = Registry.default()
    cache_dir = args.cache_dir or default_cache_dir()
    if args.dry_run:
        return suite, registry, plan(suite, suite_name, overrides, registry, cache_dir, build_models=False)
    _check_cache(cache_dir)
    if retry_failed:
        _forget_failures(cache_dir)
    try:
        return suite, registry, plan(suite, suite_name, overrides, registry, cache_dir)
    except OSError as exc:  # a full disk while building the zoo into the cache, say
        raise UserError(f"model cache {cache_dir}: {os_reason(exc)} while building models into it") from None


def _check_cache(cache_dir: Path) -> None:
    """The model cache must be a folder of this user's alone that bench can write: one line now, not a traceback
    from the first model nor another user's planted conversion later (``bench.cache.open_cache``)."""
    for note in open_cache(cache_dir):
        print(note, file=sys.stderr)


def _forget_failures(cache_dir: Path) -> None:
    from bench.execution.convert import forget_failures

    count = forget_failures(cache_dir)
    print(f"--retry-failed: forgot {count} cached conversion failure(s) in {cache_dir}", file=sys.stderr)


def _resumed(args: argparse.Namespace):
    """The run to finish and its own flags, parsed again from its stored command line (a new Namespace: the
    command line's --results, --verbose and --retry-failed stay the caller's, for they are not part of the run)."""
    from bench.run import load_run

    given = [f for f in PLAN_FLAGS if getattr(args, f)] + (["suite"] if args.suite else [])
    if given:
        raise UserError(f"--resume replays the run's own flags; drop --{given[0].replace('_', '-')}")
    run = load_run(args.results, args.resume)
    return run, build_parser().parse_args(["run", *run.argv])


def cmd_run(args: argparse.Namespace) -> int:
    from bench.run import Interrupted, RunInfo, RunOptions, check_resumable, execute

    run, flags = _resumed(args) if args.resume else (None, args)  # flags: what the run plans and how it runs
    suite, registry, planned = _plan(flags, args.retry_failed)
    if flags.dry_run:
        for p in planned:
            note = f"  [{p.skip_status}: {p.skip_reason}]" if p.skip_status else ""
            print(f"{p.case.key}{note}")
        print(f"{len(planned)} cases ({sum(not p.skip_status for p in planned)} to run)")
        return 0
    if run:
        check_resumable(run, planned)
    run = run or RunInfo.new(suite.name, args.argv[1:])
    try:
        run_options = RunOptions(strict=flags.strict, cooldown_s=flags.cooldown, cooldown_until_c=flags.cooldown_until,
                                 cooldown_max_s=flags.cooldown_max, machine_label=flags.machine_label,
                                 shard=str(flags.shard or ""), verbose=args.verbose,
                                 convert_ahead=flags.convert_ahead)
        execute(planned, args.results, run, registry, options=run_options)
    except Interrupted as exc:
        return exc.exit_code
    except OSError as exc:
        raise UserError(f"cannot write results to {args.results}: {exc.strerror or exc}") from None
    return 0


def _build_models(args: argparse.Namespace) -> int:
    from bench.models.zoo import compute_cost, load_manifest
    from bench.plan import check_names

    zoo = load_manifest()
    names = args.models or sorted(zoo)
    check_names("model", names, sorted(zoo), "--models")
    cache = args.cache_dir or default_cache_dir()
    _check_cache(cache)
    for name in names:
        cost = compute_cost(zoo[name], cache)
        print(f"{name}: {zoo[name].cache_path(cache)}  params={cost['params']:,}  MACs={cost['macs']:,}", flush=True)
    return 0


def cmd_compact(args: argparse.Namespace) -> int:
    from bench.results import store
    from bench.results.compaction import compact_all

    if not store.exists(args.results):
        raise UserError(f"no results at {args.results}")
    done = compact_all(args.results)
    print(f"compacted {done.runs} runs: {done.files} case files merged into {done.runs}" if done.runs
          else f"nothing to compact in {args.results}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from bench import listing

    if args.action == "build":
        return _build_models(args)
    print(listing.models(args.cache_dir))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from bench import listing

    print(getattr(listing, args.what)())
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from bench.report import command

    return command(args.results, args.out, args.baseline, args.run_id)


def cmd_tune(args: argparse.Namespace) -> int:
    return tune.command(tune.TuneOptions.of(args))


def cmd_compare(args: argparse.Namespace) -> int:
    from bench.report.compare import CompareOptions, command

    return command(CompareOptions(
        base=args.base, new=args.new, results=args.results, threshold=args.threshold, each_machine=args.each_machine,
        markdown_dir=args.markdown_dir, markdown=args.markdown, json=args.json, allow_env_diff=args.allow_env_diff,
        by=args.by,
    ))


def cmd_coverage(args: argparse.Namespace) -> int:
    from bench.report.coverage import matrix

    print(matrix(args.results, args.run_id))
    return 0


def main(argv: list[str] | None = None) -> int:
    telemetry.switch_off()  # before anything imports a runtime, here or in a child process
    argv = sys.argv[1:] if argv is None else argv
    try:  # a run stores its own command line, for --resume: the Namespace is made with it, not changed after parsing
        args = build_parser().parse_args(argv, namespace=argparse.Namespace(argv=argv))
    except SystemExit as exc:  # a bad flag (its one line printed), or --help: the exit code, as a handler returns one
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return args.handler(args)
    except UserError as exc:
        print(f"bench: error: {printable(str(exc))}", file=sys.stderr)  # a name in it may hold terminal escapes
        return 2
