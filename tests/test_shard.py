"""--shard i/n splits a suite deterministically, disjointly and completely."""

from __future__ import annotations

import pytest

from bench.errors import UserError
from bench.plan import Shard


def test_shards_are_disjoint_and_complete(bench_cli):
    full = bench_cli("run", "--suite", "mobile", "--dry-run").stdout.splitlines()[:-1]
    parts = []
    for i in (1, 2, 3):
        out = bench_cli("run", "--suite", "mobile", "--dry-run", "--shard", f"{i}/3").stdout.splitlines()[:-1]
        again = bench_cli("run", "--suite", "mobile", "--dry-run", "--shard", f"{i}/3").stdout.splitlines()[:-1]
        assert out == again and out  # deterministic, none empty
        parts.append(out)
    assert sorted(sum(parts, [])) == sorted(full)
    assert not set(parts[0]) & set(parts[1]) and not set(parts[1]) & set(parts[2])


@pytest.mark.parametrize("text", ["0/3", "4/3", "1", "a/b", "1/0", "-1/2"])
def test_bad_shards_are_refused(text, bench_cli):
    with pytest.raises(UserError, match="expected I/N"):
        Shard.parse(text)
    done = bench_cli("run", "--shard", text, "--dry-run")
    assert done.returncode == 2 and "--shard" in done.stderr and done.stderr.count("\n") == 1
