"""``bench tune``: a runner's tuning step (TVM's MetaSchedule), as a cached, budgeted step of its own.

Each model (at each of the suite's batch sizes) is tuned by the runner's ``tuner`` (``RunnerSpec.tuner``) in a fresh
subprocess that leads its own process group, with ``--trials`` as the budget and ``--timeout`` as the deadline: past
it the whole group (the tuner's own build and measurement workers too) is killed and the model's line says so. The
subprocess lives as a case's worker does (``bench.launcher``'s ``spawn`` and ``wait``: a pidfd deadline, its log
capped, what left its group ended after it, and it dies with ``bench tune``). The
tuner writes its database into the cache, keyed like the compiled artifact; later runs find it there, and a second
``bench tune`` with the same budget reuses it. Every outcome is one line: tuned, reused, failed or timeout with its
reason, or conversion_failed / unsupported / unavailable for a model the runner cannot take (as ``bench run`` would
say); the exit code is 1 when a tuning failed or passed its deadline. Example::

    python -m bench tune --runner tvm --models mobilenet_v2 --trials 64 --timeout 3600

Usage of the child (by ``bench tune`` only): ``python -m bench.tune TUNER REQUEST_JSON OUTCOME_JSON``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import traceback
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import containment, options, telemetry
from bench.errors import UserError
from bench.text import printable

if TYPE_CHECKING:
    from bench.launcher import Ended

# A tuning measures thousands of candidate programs: far longer than one case's deadline (a suite's 300 s)
DEFAULT_TIMEOUT_S = 3600.0


class TuneStatus(str, Enum):
    """What became of a model's tuning (a model the runner cannot take has the row's ``Status`` instead)."""

    TUNED = "tuned"
    REUSED = "reused"  # the cache had a database for this budget
    FAILED = "failed"
    TIMEOUT = "timeout"  # passed --timeout: the tuner's process group was killed

    def __str__(self) -> str:
        return self.value


DONE = (TuneStatus.TUNED, TuneStatus.REUSED)
FAILED = (TuneStatus.FAILED, TuneStatus.TIMEOUT)  # the tuning itself went wrong: exit code 1


def add_parser(sub, handler) -> None:
    p = sub.add_parser("tune", help="tune models for a runner that has a tuning step (tvm), into the cache")
    p.set_defaults(handler=handler)
    p.add_argument("--runner", required=True, help="the runner to tune for (one with a tuning step: tvm)")
    p.add_argument("--trials", type=options.trials, required=True,
                   help="the budget: measured trials per model, in all")
    p.add_argument("--suite", help="tune the suite's models at its batch sizes (default: smoke, or model with --model)")
    p.add_argument("--models", type=options.csv, help="comma-separated zoo model names, replacing the suite's")
    p.add_argument("--model", type=Path, help="your own ONNX file, replacing the suite's models")
    p.add_argument("--shape", type=options.shape, action="append", default=[],
                   help="NAME:1x3x224x224 for a dynamic input of --model")
    p.add_argument("--target", help='the TVM target as JSON (default: LLVM for this CPU, e.g. {"kind": "llvm", '
                   '"mcpu": "znver5"}; num-cores: the cores here); runs compile for this CPU and use only its database')
    p.add_argument("--builders", type=options.builders, default=0, metavar="N",
                   help="MetaSchedule build workers (default 0: builds in the tuning process itself)")
    p.add_argument("--timeout", type=options.timeout, default=DEFAULT_TIMEOUT_S, metavar="S",
                   help=f"deadline per model in seconds (default {DEFAULT_TIMEOUT_S:g})")
    p.add_argument("--cache-dir", type=Path, help="model cache (default: $BENCH_CACHE_DIR or ~/.cache/bench)")


@dataclass(frozen=True)
class TuneOptions:
    """``bench tune``'s flags, parsed and bounded (bench.options)."""

    runner: str
    trials: int
    suite: str | None = None
    models: list[str] | None = None
    model: Path | None = None
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    target: str | None = None
    builders: int = 0
    timeout_s: float = DEFAULT_TIMEOUT_S
    cache_dir: Path | None = None

    @classmethod
    def of(cls, args: argparse.Namespace) -> TuneOptions:
        options.check_model_flags(args.model, args.models, args.shape)
        return cls(runner=args.runner, trials=args.trials, suite=args.suite, models=args.models, model=args.model,
                   shapes=dict(args.shape), target=args.target, builders=args.builders, timeout_s=args.timeout,
                   cache_dir=args.cache_dir)


def _spec(name: str):
    from bench.registry import Registry

    registry = Registry.default()
    if name not in registry.specs:
        raise UserError(f"--runner: unknown runner {name!r}; known: {', '.join(registry.specs)}")
    spec = registry.specs[name]
    if not spec.tuner:
        tunable = [n for n, s in registry.specs.items() if s.tuner]
        raise UserError(f"--runner {name}: it has no tuning step (runners with one: {', '.join(tunable) or 'none'})")
    available = spec.available()
    if not available.ok:
        raise UserError(f"--runner {name}: {available.reason}")
    return registry, spec


def _cases(args: TuneOptions, registry, spec):
    """One case per model and batch size: the suite's models built into the cache, as ``bench run`` plans them."""
    from bench.cache import default_cache_dir, open_cache
    from bench.plan import Overrides, plan
    from bench.suite import load_suite, with_axes

    name = args.suite or ("model" if args.model else "smoke")
    suite = with_axes(load_suite(name), precisions=[spec.precisions[0]], scenarios=["latency"],
                      devices=[spec.devices[0]])
    overrides = Overrides(models=args.models, runners=[spec.name], threads=[1], user_model=args.model,
                          shapes=args.shapes)
    cache_dir = args.cache_dir or default_cache_dir()
    for note in open_cache(cache_dir):
        print(note, file=sys.stderr)
    planned = plan(suite, name, overrides, registry, cache_dir)
    unique = {(p.case.model.sha256, p.case.batch): p for p in planned}
    return list(unique.values())


def _request(case, args: TuneOptions) -> dict[str, Any]:
    return {"case": case.to_json(), "trials": args.trials, "target": args.target, "builders": args.builders}


def run_tuner(tuner: str, request: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """The tuner's outcome, from a fresh subprocess with a deadline; a crash or a timeout is an outcome too. The
    subprocess is started and waited for as a case's worker is (``bench.launcher.spawn`` and ``wait``): past the
    deadline its whole group (the tuner's build and measurement workers) is killed, and what left the group too."""
    from bench import launcher  # the parent's: the tuner's own process (python -m bench.tune) never imports it

    with tempfile.TemporaryDirectory(prefix="bench-tune-") as tmp:
        request_file, outcome_file, log = Path(tmp, "request.json"), Path(tmp, "outcome.json"), Path(tmp, "tune.log")
        request_file.write_text(json.dumps(request))
        cmd = [sys.executable, "-m", "bench.tune", tuner, str(request_file), str(outcome_file)]
        env = {**telemetry.switched_off(), containment.PARENT_ENV: str(os.getpid())}  # it dies with bench tune
        logs = launcher.Logs(log)  # stdout and stderr in one file, as the tuner printed them
        ended = launcher.wait(launcher.spawn(cmd, logs, env), timeout_s, logs)
        return _outcome(ended, outcome_file, log, timeout_s)


def _outcome(ended: Ended, outcome_file: Path, log: Path, timeout_s: float) -> dict[str, Any]:
    """The tuner's own outcome where it wrote one in time, else what became of its process."""
    from bench.launcher import Ending

    if ended.how is Ending.TIMED_OUT:
        return {"status": TuneStatus.TIMEOUT, "reason": f"passed its {timeout_s:g} s deadline (--timeout): killed, "
                                                        "no database written"}
    if ended.how is Ending.LOG_CAP:
        return {"status": TuneStatus.FAILED, "reason": f"the tuner's output: {ended.reason}"}
    if outcome_file.is_file():
        return json.loads(outcome_file.read_text())
    return {"status": TuneStatus.FAILED, "reason": f"the tuner died ({_how(ended.returncode)}): {_last_lines(log)}"}


def _how(code: int | None) -> str:
    if code is None:
        return "exit unknown"
    return f"signal {-code}" if code < 0 else f"exit code {code}"


def _last_lines(log: Path, count: int = 6) -> str:
    from bench.execution.convert import excerpt

    lines = log.read_text(errors="replace").splitlines()[-count:]
    return excerpt("\n".join(lines), count) or "no output"


def _line(case, outcome: dict[str, Any]) -> str:
    status = outcome.get("status", "failed")
    what = f"{case.model.name} b{case.batch}"
    if status in DONE:
        verb = "reused, not tuned again" if status == "reused" else f"{outcome.get('seconds', 0):.0f} s"
        return f"{what}: {status}: {outcome.get('trials')} trials ({verb}) -> {outcome.get('database')}"
    return f"{what}: {status}: {outcome.get('reason', '?')}"


def command(args: TuneOptions) -> int:
    registry, spec = _spec(args.runner)
    outcomes = []
    for planned in _cases(args, registry, spec):
        if planned.skip_status:
            outcome = {"status": str(planned.skip_status), "reason": planned.skip_reason}
        else:
            print(f"{printable(planned.case.model.name)} b{planned.case.batch}: tuning ({args.trials} trials at most, "
                  f"{args.timeout_s:g} s deadline) ...", flush=True)
            outcome = run_tuner(spec.tuner, _request(planned.case, args), args.timeout_s)
        print(printable(_line(planned.case, outcome)), flush=True)  # the model's name and the tuner's reason
        outcomes.append(outcome)
    done = sum(o.get("status") in DONE for o in outcomes)
    failed = sum(o.get("status") in FAILED for o in outcomes)
    print(f"{len(outcomes)} models: {done} tuned or reused, {failed} failed, {len(outcomes) - done - failed} that "
          "the runner cannot take (conversion_failed, unsupported, unavailable)")
    return 1 if failed else 0


def child(argv: list[str]) -> int:
    """In the subprocess: run the tuner, write its outcome (a failure is an outcome, with its reason)."""
    from bench.contract import ConversionFailed, Status
    from bench.files import write_bytes_atomic
    from bench.loading import load_object

    tuner, request_file, outcome_file = argv
    request = json.loads(Path(request_file).read_text())
    try:
        outcome = load_object(tuner)(request)
    except ConversionFailed as exc:  # the runtime cannot take the model: what `bench run` would say too
        ops = f" (ops: {', '.join(exc.ops)})" if exc.ops else ""
        outcome = {"status": Status.CONVERSION_FAILED, "reason": f"{exc}{ops}"}
    except Exception as exc:  # the tuner failing is an outcome, not a crash of bench tune
        traceback.print_exc(limit=20)
        outcome = {"status": TuneStatus.FAILED, "reason": f"{type(exc).__name__}: {exc}"}
    write_bytes_atomic(Path(outcome_file), json.dumps(outcome).encode())
    return 0


if __name__ == "__main__":
    containment.die_with_parent(containment.expected_parent_from_environment())  # no tuner outlives bench tune
    telemetry.switch_off()
    sys.exit(child(sys.argv[1:]))
