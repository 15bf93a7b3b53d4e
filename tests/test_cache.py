"""The model cache is this user's alone: a folder others own or can write is refused, an entry another user could
have planted (their file, a file or folder anyone can write, a link) is removed and rebuilt, never used."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.cache import open_cache
from bench.results import store
from bench.results.uri import Location

FAST = str(Path(__file__).parent / "fixtures" / "fast.toml")
NOBODY = 65534


def _give_away(path: Path) -> None:
    """``path`` as another local user's (needs root, or CAP_CHOWN)."""
    try:
        os.chown(path, NOBODY, -1)
    except PermissionError:
        pytest.skip("os.chown to another user is not permitted here")


def _others_can_write(root: Path) -> list[str]:
    return [str(p) for p in [root, *root.rglob("*")] if p.lstat().st_mode & (stat.S_IWGRP | stat.S_IWOTH)]


@pytest.mark.parametrize("whose", ["world_writable", "group_writable", "another_users"])
def test_a_cache_folder_that_is_not_yours_alone_is_refused_in_one_line(bench_cli, tmp_path, whose):
    cache = tmp_path / "shared"
    cache.mkdir(mode=0o700)
    if whose == "another_users":
        _give_away(cache)
    else:
        cache.chmod(0o777 if whose == "world_writable" else 0o770)
    done = bench_cli("run", "--suite", FAST, "--cache-dir", str(cache), "--results", "out")
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert f"--cache-dir {cache}: " in done.stderr and "Traceback" not in done.stderr
    expected = {"world_writable": "writable by group and others (mode 777)",
                "group_writable": "writable by group (mode 770)",
                "another_users": f"owned by uid {NOBODY}, not by you"}[whose]
    assert expected in done.stderr
    assert not any(cache.iterdir()) and not (tmp_path / "out").exists()  # refused before anything was planned


def _plant_wrong_reference(cache: Path, how: str) -> Path:
    """Another user's fp32 reference for the model: valid numbers (zeros) with a matching .sha256, the pair a
    planted conversion would come with; before the cache was checked, every runner was judged against it."""
    [reference] = (cache / "reference").glob("*.npz")
    checksum = reference.with_suffix(".sha256")
    with np.load(reference) as data:
        arrays = {k: np.zeros_like(v) for k, v in data.items()}
    reference.unlink()
    with open(reference, "wb") as f:
        np.savez(f, **arrays)
    from bench.cache import sha256_file

    checksum.write_text(sha256_file(reference))
    if how == "world_writable_file":
        reference.chmod(0o666)
        checksum.chmod(0o666)
    elif how == "another_users_file":
        _give_away(reference)
        _give_away(checksum)
    else:  # the folder: anyone could have swapped what is in it
        (cache / "reference").chmod(0o777)
    return reference


@pytest.mark.slow  # two real runs, ~5-10 s
@pytest.mark.parametrize("how", ["world_writable_file", "another_users_file", "world_writable_folder"])
def test_a_planted_reference_is_removed_and_rebuilt_not_used(bench_cli, tmp_path, how):
    args = ("run", "--suite", FAST, "--cache-dir", "cache")
    assert bench_cli(*args, "--results", "first").returncode == 0
    reference = _plant_wrong_reference(tmp_path / "cache", how)
    done = bench_cli(*args, "--results", "second")
    assert done.returncode == 0, done.stderr
    [row] = store.read_cases(Location.resolve(tmp_path / "second"), ["status", "accuracy_ok"]).to_pylist()
    assert row == {"status": "ok", "accuracy_ok": True}  # against a rebuilt reference, not the planted one
    removed = reference.parent.name if how == "world_writable_folder" else f"reference/{reference.name}"
    assert f"model cache: removed {removed} (" in done.stderr and "not trusted" in done.stderr, done.stderr
    assert reference.stat().st_uid == os.getuid() and not _others_can_write(tmp_path / "cache")


@pytest.mark.slow  # two real runs, ~5 s
def test_a_cache_made_under_a_loose_umask_is_private_and_kept(tmp_path):
    cache = tmp_path / "new" / "cache"
    env = {**os.environ, "BENCH_CACHE_DIR": str(cache)}

    def run(results: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "bench", "run", "--suite", FAST, "--results", results],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, umask=0o002)

    assert run("first").returncode == 0
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700 and not _others_can_write(cache)
    assert {p.name for p in cache.iterdir()} >= {"onnx", "reference"}
    second = run("second")
    assert second.returncode == 0 and "model cache: removed" not in second.stderr, second.stderr


@pytest.fixture
def umask_022():
    """open_cache tightens the process's umask: this test's own, put back after."""
    before = os.umask(0o022)
    yield
    os.umask(before)


def test_open_cache_keeps_your_entries_and_removes_what_another_user_could_have_made(tmp_path, umask_022):
    cache = tmp_path / "cache"
    ours = cache / "artifacts" / "mnn" / "a"
    ours.mkdir(parents=True)
    (ours / "MANIFEST.json").write_text("{}")
    planted = cache / "artifacts" / "mnn" / "b"
    planted.mkdir()
    (planted / "model.mnn").write_text("tampered")
    (planted / "MANIFEST.json").write_text("{}")
    (planted / "MANIFEST.json").chmod(0o666)
    (cache / "artifacts" / "ncnn").symlink_to(tmp_path)  # a link: bench writes none, so not ours to follow
    foreign = cache / "reference"
    foreign.mkdir()
    (foreign / "x.npz").write_bytes(b"")
    _give_away(foreign)
    notes = open_cache(cache)
    assert sorted(notes) == sorted([
        "model cache: removed artifacts/mnn/b/MANIFEST.json (writable by group and others (mode 666)): not trusted; "
        "it is rebuilt when needed",
        "model cache: removed artifacts/ncnn (not a plain file or folder (bench writes no links there)): not trusted; "
        "it is rebuilt when needed",
        f"model cache: removed reference (owned by uid {NOBODY}, not by you (uid {os.getuid()})): not trusted; "
        "it is rebuilt when needed",
    ])
    assert (ours / "MANIFEST.json").exists() and (planted / "model.mnn").exists()  # ours, judged file by file
    assert not (planted / "MANIFEST.json").exists() and not foreign.exists() and tmp_path.exists()


def test_a_cache_path_too_long_for_the_filesystem_is_one_line_naming_the_name(bench_cli, tmp_path):
    cache = tmp_path / ("c" * 300)
    expected = (f"bench: error: --cache-dir {cache}: cannot be the model cache (the name '{'c' * 39}…' is 300 bytes; "
                "the filesystem takes at most 255 a name); give a writable folder (or set BENCH_CACHE_DIR)\n")
    for args in (["run", "--suite", FAST, "--results", "out"], ["models", "build", "--models", "tiny_mlp"]):
        done = bench_cli(*args, "--cache-dir", str(cache))
        assert done.returncode == 2 and done.stderr == expected, done.stderr
    listing = bench_cli("models", "--cache-dir", str(cache))  # only reads: the zoo, nothing cached
    assert listing.returncode == 0 and "tiny_mlp" in listing.stdout, listing.stderr


def test_the_arm64_root_scripts_arm64_keeps_in_the_cache_is_left_alone(tmp_path, umask_022):
    """scripts/arm64 keeps a Debian root under cache/arm64 (its /tmp is 1777 by design); bench never reads it, and
    removing parts of it would break every later emulated run."""
    tmp = tmp_path / "cache" / "arm64" / "key" / "root" / "tmp"
    tmp.mkdir(parents=True)
    tmp.chmod(0o1777)
    assert open_cache(tmp_path / "cache") == [] and tmp.is_dir()
