"""Suite files are validated whole before anything runs; each error names the file and the key."""

from __future__ import annotations

import os

import pytest

from bench.errors import UserError
from bench.suite import builtin_suites, load_suite, parse_suite

GOOD = 'name = "x"\nmodels = ["tiny_mlp"]\n'


@pytest.mark.parametrize(
    "text, message",
    [
        (GOOD + "colour = 3\n", "unknown key 'colour'"),
        (GOOD + "[timing]\nmin_tme_s = 1\n", "unknown key 'timing.min_tme_s'"),
        (GOOD + 'batch_sizes = ["one"]\n', "key 'batch_sizes.0'"),
        (GOOD + 'timeout_s = "soon"\n', "key 'timeout_s'"),
        (GOOD + 'precisions = ["fp64"]\n', "key 'precisions.0'"),
        (GOOD + "threads = [2.5]\n", "key 'threads.0'"),
        ('name = "x"\n', "missing key 'models'"),
        ('name = "x"\nmodels = []\n', "key 'models'"),
        (GOOD + "models = [\n", "TOML syntax error"),
        (GOOD + "[timing]\ntarget_rel_ci = 0\n", "key 'timing.target_rel_ci'"),
        ('name = "x"\nmodels = ["tiny_mlp", "tiny_mlp"]\n', "key 'models': Value error, listed more than once"),
        (GOOD + "threads = [1, 1]\n", "listed more than once: 1"),
        (GOOD + "[timing]\nmin_time_s = 5.0\nmax_time_s = 1.0\n", "min_time_s (5) is above max_time_s (1)"),
        (GOOD + "[timing]\nmax_time_s = inf\n", "key 'timing.max_time_s'"),
        (GOOD + "timeout_s = 1e308\n", "key 'timeout_s': Input should be less than or equal to 604800"),
        (GOOD + "[timing]\nmin_iterations = 1000000000000\n", "key 'timing.min_iterations'"),
        (GOOD + "timeout_s = nan\n", "key 'timeout_s'"),
    ],
)
def test_bad_suites_name_file_and_key(text, message):
    with pytest.raises(UserError) as err:
        parse_suite(text, "my.toml")
    assert str(err.value).startswith("my.toml: ") and message in str(err.value)
    assert "\n" not in str(err.value)


def test_toml_syntax_error_gives_the_line():
    with pytest.raises(UserError, match=r"line 3"):
        parse_suite(GOOD + "threads = [1,,2]\n", "my.toml")


def test_every_shipped_suite_is_valid():
    for name, text in builtin_suites().items():
        assert parse_suite(text, name).name == name


def test_suite_from_path_and_missing_file(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(GOOD)
    assert load_suite(str(path)).models == ["tiny_mlp"]
    with pytest.raises(UserError, match="cannot read suite file"):
        load_suite(str(tmp_path / "absent.toml"))



def _unreadable_suite(kind: str, tmp_path) -> tuple[str, str]:
    """A suite file of ``kind`` and what the one line about it says."""
    path = tmp_path / f"{kind}.toml"
    if kind == "latin1":
        path.write_bytes('name = "café"\nmodels = ["tiny_mlp"]\n'.encode("latin-1"))
        return str(path), f"{path}: not UTF-8 at byte 11 (0xe9)"
    if kind == "device":
        return "/dev/zero", "/dev/zero: not a regular file"
    if kind == "fifo":
        os.mkfifo(path)  # no writer ever opens it: reading it would wait forever
        return str(path), f"{path}: not a regular file"
    if kind == "huge":
        path.write_bytes(GOOD.encode() + b"#" * (2 << 20))
        return str(path), f"{path}: larger than 1 MiB"
    path.write_text("x = " + "[" * 100_000)
    return str(path), f"{path}: TOML nested too deeply"


@pytest.mark.parametrize("kind", ["latin1", "device", "fifo", "huge", "deep"])
def test_a_suite_file_bench_cannot_read_is_one_line_and_never_waits(bench_cli, tmp_path, kind):
    """Not UTF-8, a device without end, a named pipe with no writer, 2 MiB, arrays nested 100,000 deep: each is one
    line naming the file (and the byte), exit 2, in seconds; before, a traceback, an unbounded read or a hang."""
    path, needle = _unreadable_suite(kind, tmp_path)
    done = bench_cli("run", "--suite", path, "--dry-run", timeout=60)
    assert done.returncode == 2, done.stderr[-500:]
    assert done.stderr.startswith("bench: error: ") and "Traceback" not in done.stderr
    assert needle in done.stderr and done.stderr.count("\n") == 1, done.stderr[-500:]
