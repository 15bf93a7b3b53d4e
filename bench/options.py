"""The command line's one edge: every flag's text becomes a checked, typed value here, as argparse ``type=``.

A bad value is argparse's one-line usage error naming the flag (exit 2) before any handler runs, and the handlers
(``bench.cli``, ``bench.tune``) hand the rest of bench typed values: a results ``Location``, a ``Threshold``, a
``Shard``, numbers within their bounds. A flag that replaces a suite file's key has that key's bound
(``bench.suite``: threads, batch sizes, the one-week deadline); the command line's own bounds are named here. Example::

    p.add_argument("--timeout", type=options.timeout)  # bench run and bench tune alike
    # bench run --timeout nan  ->  bench: error: --timeout is in seconds and must be in (0, 604800], got nan
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from bench.errors import UserError
from bench.suite import MAX_THREADS, MAX_TIMEOUT_S  # a suite file's bounds, for the flags that replace its keys

if TYPE_CHECKING:
    from bench.models.torchsource import FactoryRef
    from bench.plan import Shard
    from bench.report.compare import Threshold
    from bench.results.uri import Location

MAX_COOLDOWN_S = 3600  # an idle wait per case past an hour is a typo
MIN_MEMORY_MB = 64  # a smaller cap leaves no room for the worker's own Python: every case oom
MAX_MEMORY_MB = 1 << 30  # a petabyte: past it the address-space limit overflows setrlimit
CELSIUS = (-50.0, 150.0)  # degrees a thermal zone reads; outside them a --cooldown-until is a typo
MAX_TRIALS = 100_000  # a tuning budget (bench tune --trials)
MAX_THRESHOLD_PCT = 1000  # a median that changed 10x is past what a threshold asks

T = TypeVar("T")
N = TypeVar("N", int, float)


def csv(text: str) -> list[str]:
    """``"a, b,c"`` -> ``["a", "b", "c"]``; an empty list is refused."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return items


def int_csv(text: str) -> list[int]:
    try:
        return [int(t) for t in csv(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def in_range(flag: str, number: Callable[[str], N], low: N, high: N, *, meaning: str = "",
             open_low: bool = False) -> Callable[[str], N]:
    """A ``type=`` for ``flag``: ``number(text)`` within ``[low, high]`` (``(low, high]`` if ``open_low``), NaN
    refused; one message for a value out of range and for no number at all, naming the flag, what it means and its
    interval: "--cooldown is in seconds and must be in [0, 3600], got inf"."""
    interval = f"{'(' if open_low else '['}{str(low).removesuffix('.0')}, {str(high).removesuffix('.0')}]"
    refusal = f"{flag}{f' is {meaning} and' if meaning else ''} must be in {interval}, got "

    def parse(text: str) -> N:
        try:
            value = number(text)
        except ValueError:
            raise argparse.ArgumentTypeError(refusal + text.strip()) from None
        if not (low < value if open_low else low <= value) or not value <= high:  # NaN fails both
            raise argparse.ArgumentTypeError(refusal + text.strip())
        return value

    return parse


# One parser per bounded flag, shared by every subcommand that takes the flag.
timeout = in_range("--timeout", float, 0.0, MAX_TIMEOUT_S, meaning="in seconds", open_low=True)
cooldown = in_range("--cooldown", float, 0.0, MAX_COOLDOWN_S, meaning="in seconds")
cooldown_max = in_range("--cooldown-max", float, 0.0, MAX_COOLDOWN_S, meaning="in seconds")
cooldown_until = in_range("--cooldown-until", float, *CELSIUS, meaning="in degrees C")
max_memory = in_range("--max-memory", int, MIN_MEMORY_MB, MAX_MEMORY_MB, meaning="in MB")
trials = in_range("--trials", int, 1, MAX_TRIALS, meaning="the tuning budget")
builders = in_range("--builders", int, 0, MAX_THREADS)  # build processes, bounded like threads


def _from_user_error(parse: Callable[[str], T]) -> Callable[[str], T]:
    """A parser that raises ``UserError`` (its message names the flag) as a ``type=`` for argparse."""
    def convert(text: str) -> T:
        try:
            return parse(text)
        except UserError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = parse.__name__
    return convert


def results(text: str) -> Location:
    """``--results``: a folder or a URI, resolved here once (``bench.results.uri``), so that a bad URI fails before
    anything runs and the rest of bench is handed a ``Location``."""
    from bench.results.uri import Location

    return _from_user_error(Location.resolve)(text)


def threshold(text: str) -> Threshold:
    """``--threshold``: a relative change of the median, "5%" (or "5", also percent), in [0%, 1000%)."""
    from bench.report.compare import Threshold

    number = text.strip().removesuffix("%")
    try:
        value = float(number)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--threshold: expected a percentage such as 5%, got {text!r}") from None
    if not 0 <= value < MAX_THRESHOLD_PCT:  # refuses NaN too
        raise argparse.ArgumentTypeError(f"--threshold: expected 0% to {MAX_THRESHOLD_PCT}%, got {text!r}")
    return Threshold(value / 100)


def shard(text: str) -> Shard:
    """``--shard I/N``."""
    from bench.plan import Shard

    return _from_user_error(Shard.parse)(text)


def shape(text: str) -> tuple[str, tuple[int, ...]]:
    """``--shape NAME:1x3x224x224`` (given once per input) -> ``("NAME", (1, 3, 224, 224))``."""
    from bench.models.user import parse_shapes

    [(name, dims)] = _from_user_error(lambda t: parse_shapes([t]))(text).items()
    return name, dims


def versions(text: str) -> dict[str, list[str]]:
    """``--versions onnxruntime==1.30.0,1.31.0,openvino==2025.4.0`` -> ``{"onnxruntime": ["1.30.0", "1.31.0"],
    "openvino": ["2025.4.0"]}``: a release without a name belongs to the distribution named before it (the suite
    file's ``versions`` key checks the names and releases)."""
    out: dict[str, list[str]] = {}
    current = ""
    for item in csv(text):
        name, sep, release = item.partition("==")
        if sep:
            current, item = name.strip(), release.strip()
        if not current or not item:
            raise argparse.ArgumentTypeError(f"--versions: expected DIST==VERSION[,VERSION...], e.g. "
                                             f"onnxruntime==1.31.0,1.32.0; got {text!r}")
        out.setdefault(current, []).append(item)
    return out



def torch_factory(text: str) -> FactoryRef:
    """``--torch FILE.py:FACTORY`` or ``--torch package.module:FACTORY`` (``bench.models.torchsource``)."""
    from bench.models.torchsource import FactoryRef

    return _from_user_error(FactoryRef.parse)(text)


def check_model_flags(model: Path | None, models: list[str] | None, shapes: list[tuple[str, tuple[int, ...]]],
                      torch: FactoryRef | None = None) -> None:
    """``--model``, ``--models``, ``--torch`` and ``--shape`` together, for ``bench run`` and ``bench tune`` alike."""
    if shapes and not (model or torch):
        raise UserError("--shape needs --model PATH")
    if model and models:
        raise UserError("--model and --models are exclusive: give your own file or zoo names, not both")
    if torch and (model or models):
        raise UserError(f"--torch and --{'model' if model else 'models'} are exclusive: give one source of models")
