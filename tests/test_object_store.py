"""Results in an object store, for real: a local S3-compatible server (moto), real runs, real reads.

The server runs in its own process on loopback (port chosen by the OS) and is stopped by the fixture; bench
reaches it through the standard ``AWS_ENDPOINT_URL_S3`` variable with dummy credentials, as a nightly job
reaches MinIO or AWS. Nothing here needs the network.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from bench.errors import UserError
from bench.results import store
from bench.results.compaction import Compacted, compact_all
from bench.results.uri import Location, check_no_credentials, redact

FAST = str(Path(__file__).parent / "fixtures" / "fast.toml")
NOW = datetime(2026, 11, 26, tzinfo=timezone.utc)
KEY_ID, SECRET = "BENCHTESTKEYID0000001", "bench-test-secret-never-stored-9f3a"
MOTO = """
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(f"PORT={server.get_host_and_port()[1]}", flush=True)
sys.stdin.read()  # until the test closes our stdin
server.stop()
"""


def _start_moto(timeout_s: float = 60) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-c", MOTO], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
    line = proc.stdout.readline() if ready else ""
    if not line.startswith("PORT="):
        proc.kill()
        proc.communicate()
        pytest.fail(f"moto server did not start within {timeout_s} s (is moto[server] installed? it is in the "
                    "test extra)", pytrace=False)
    return proc, int(line.strip().removeprefix("PORT="))


def _stop(proc: subprocess.Popen) -> None:
    proc.stdin.close()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    proc.stdout.close()


@pytest.fixture(scope="module")
def s3_env():
    """A running S3-compatible server with the bucket ``bench``; yields the environment that reaches it."""
    proc, port = _start_moto()
    env = {
        "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
    }
    try:
        admin = pafs.S3FileSystem(access_key=KEY_ID, secret_key=SECRET, region="us-east-1", scheme="http",
                                  endpoint_override=f"127.0.0.1:{port}", allow_bucket_creation=True)
        admin.create_dir("bench")
        yield env
    finally:
        _stop(proc)


@pytest.fixture
def s3(s3_env, monkeypatch, request):
    """This process talks to the server too; each test gets its own prefix."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in s3_env.items():
        monkeypatch.setenv(name, value)
    return f"s3://bench/{request.node.name}"


def objects(uri: str) -> dict[str, bytes]:
    loc = Location.resolve(uri)
    infos = loc.fs.get_file_info(pafs.FileSelector(loc.root, recursive=True, allow_not_found=True))
    out = {}
    for info in infos:
        if info.type == pafs.FileType.File:
            with loc.fs.open_input_stream(info.path) as f:
                out[info.path[len(loc.root) + 1:]] = f.read()
    return out


def row(key: str, run_id: str = "r1", **extra):
    return {"run_id": run_id, "timestamp": NOW, "case_key": key, "model": "m", "runner": "x", "status": "ok",
            "median_ms": 1.5, "samples_ns": [1, 2, 3], **extra}


def bench_s3(env: dict[str, str], cwd: Path, cache_dir: Path, *args: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=cwd, capture_output=True, text=True,
                          env={**clean, **env, "BENCH_CACHE_DIR": str(cache_dir)}, timeout=300)


# --- the store on S3, in this process ---------------------------------------------------------------------

def test_store_round_trip_on_s3(s3):
    written = store.write_case(Location.resolve(s3), "r1", NOW, 0, row("a/1"))
    store.write_case(Location.resolve(s3), "r1", NOW, 1, row("b/2", batch=8))
    store.write_run(Location.resolve(s3), "r1", {"run_id": "r1", "timestamp": NOW, "machine_id": "m1"})
    assert written == f"{s3}/cases/date=2026-11-26/run_id=r1/00000-a_1.parquet"
    t = store.read_cases(Location.resolve(s3)).sort_by("case_key")
    assert t.column("case_key").to_pylist() == ["a/1", "b/2"] and t.column("batch").to_pylist() == [None, 8]
    assert t.schema.field("samples_ns").type == pa.list_(pa.int64())
    assert store.read_cases(Location.resolve(s3), ["case_key"], run_id="other").num_rows == 0
    assert store.query(Location.resolve(s3), "SELECT machine_id FROM runs").to_pylist() == [{"machine_id": "m1"}]
    loc = Location.resolve(s3)
    assert store.has_table(loc, "runs") and store.exists(loc)
    assert not store.exists(Location.resolve(f"{s3}-nothing-here"))


def test_older_files_merge_and_temp_objects_are_invisible_on_s3(s3):
    store.write_case(Location.resolve(s3), "r1", NOW, 0, row("new"))
    loc = Location.resolve(s3)
    old = pa.table({"run_id": ["r0"], "case_key": ["old"], "median_ms": [2.0], "batch": pa.array([4], pa.int64())})
    store.write_table_atomic(old, f"{s3}/cases/date=2026-11-25/run_id=r0/old.parquet")
    with loc.fs.open_output_stream(loc.path("cases/date=2026-11-26/run_id=r1/.00001-b.parquet.7.tmp")) as f:
        f.write(b"PAR1 half an object")
    t = store.read_cases(Location.resolve(s3), ["case_key", "batch", "status"])
    assert sorted(t.to_pylist(), key=lambda r: r["case_key"]) == [
        {"case_key": "new", "batch": None, "status": "ok"}, {"case_key": "old", "batch": 4, "status": None}]


def test_a_row_that_fails_to_serialize_leaves_no_object(s3):
    store.write_case(Location.resolve(s3), "r1", NOW, 0, row("a"))
    with pytest.raises(pa.ArrowInvalid):
        store.write_case(Location.resolve(s3), "r1", NOW, 1, row("b", batch="not an int"))
    assert list(objects(s3)) == ["cases/date=2026-11-26/run_id=r1/00000-a.parquet"]


def test_written_objects_are_complete_parquet_files(s3):
    store.write_case(Location.resolve(s3), "r1", NOW, 0, row("a", samples_ns=list(range(100_000))))
    (name, data), = objects(s3).items()
    assert pq.read_table(pa.BufferReader(data)).column("samples_ns").to_pylist()[0][-1] == 99_999


# --- the command line against S3 --------------------------------------------------------------------------

@pytest.mark.slow
def test_run_report_and_compare_on_s3_keep_credentials_out(s3, s3_env, tmp_path, cache_dir):
    results = f"{s3}/nightly"
    first = bench_s3(s3_env, tmp_path, cache_dir, "run", "--suite", FAST, "--results", results,
                     "--machine-label", "x86-test")
    assert first.returncode == 0, first.stderr
    second = bench_s3(s3_env, tmp_path, cache_dir, "run", "--suite", FAST, "--results", results)
    assert second.returncode == 0, second.stderr
    loc = Location.resolve(results)
    runs = store.query(loc, "SELECT run_id, machine_label, command FROM runs ORDER BY timestamp").to_pylist()
    assert len(runs) == 2 and runs[0]["machine_label"] == "x86-test"
    assert runs[0]["command"].endswith(f"--results {results} --machine-label x86-test")
    cases = store.read_cases(Location.resolve(results), ["run_id", "status"]).to_pylist()
    assert [c["status"] for c in cases] == ["ok", "ok"] and {c["run_id"] for c in cases} == {r["run_id"] for r in runs}
    stored = objects(results)
    assert all(name.endswith(".parquet") and not Path(name).name.startswith(".") for name in stored)
    assert sorted(Path(name).name for name in stored if name.startswith("cases/")) == [store.COMPACTED] * 2

    report = bench_s3(s3_env, tmp_path, cache_dir, "report", "--results", results, "--out", "page")
    assert report.returncode == 0, report.stderr
    assert "tiny_mlp" in (tmp_path / "page" / "index.html").read_text()
    compare = bench_s3(s3_env, tmp_path, cache_dir, "compare", runs[0]["run_id"], runs[1]["run_id"],
                       "--results", results, "--markdown", "compare.md")
    assert compare.returncode in (0, 1), compare.stderr  # 1 is a (noisy) regression, not a failure to compare
    assert "tiny_mlp/onnxruntime" in (tmp_path / "compare.md").read_text()

    outputs = [first.stdout, first.stderr, second.stdout, second.stderr, report.stdout, report.stderr,
               compare.stdout, compare.stderr, *stored.values()]
    outputs += [f.read_bytes() for f in (tmp_path / "page").rglob("*") if f.is_file()]
    for secret in (KEY_ID, SECRET):
        assert not [o for o in outputs if secret in (o if isinstance(o, str) else o.decode("latin-1"))]


@pytest.mark.parametrize("uri", [f"s3://{KEY_ID}:{SECRET}@bench/x", f"s3://{KEY_ID}@bench/x",
                                 f"s3://bench/x?region=us-east-1&secret_key={SECRET}",
                                 f"abfs://c:{SECRET}@account.dfs.core.windows.net/x",
                                 f"gs://bucket/x?access_token={SECRET}",
                                 f"s3://bench/x?endpoint_override=user:{SECRET}@127.0.0.1:9000"])
def test_credentials_in_the_uri_are_refused_and_never_echoed(uri, bench_cli, tmp_path):
    with pytest.raises(UserError, match="credentials in the URI are refused") as caught:
        check_no_credentials(uri)
    assert SECRET not in str(caught.value)
    done = bench_cli("run", "--suite", FAST, "--results", uri)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "credentials in the URI are refused" in done.stderr and SECRET not in done.stderr + done.stdout
    assert not list(tmp_path.iterdir())  # nothing written anywhere


def test_redact_hides_user_info_and_secret_query_values():
    assert redact("s3://k:s@b/p?region=eu&secret_key=s") == "s3://***@b/p?region=eu&secret_key=***"
    assert redact("s3://b/p?endpoint_override=host:9000") == "s3://b/p?endpoint_override=host:9000"
    assert redact("s3://b/p?endpoint_override=u:pw@host:9000") == "s3://b/p?endpoint_override=***"
    check_no_credentials("abfs://container@account.dfs.core.windows.net/x")  # a container name is no secret


@pytest.mark.parametrize("uri, needle", [
    ("foo://bucket/x", "Unrecognized filesystem type in URI: foo://bucket/x; expected a folder, file://, s3://"),
    ("s3://", "expected a bucket or folder after the scheme"),
])
def test_bad_uris_are_one_line(uri, needle, bench_cli):
    for command in (["run", "--suite", FAST], ["report"], ["compare", "a", "b"]):
        done = bench_cli(*command, "--results", uri)
        assert done.returncode == 2 and done.stderr.count("\n") == 1 and needle in done.stderr, done.stderr


@pytest.mark.slow  # the S3 client retries a refused connection for about 6 s
def test_unreachable_endpoint_is_one_line(bench_cli, tmp_path, cache_dir):
    env = {"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
    done = bench_s3(env, tmp_path, cache_dir, "run", "--suite", FAST, "--results", "s3://bench/x")
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("bench: error: cannot read results at s3://bench/x: ")
    assert "Could not connect" in done.stderr


def test_missing_bucket_is_one_line(s3_env, tmp_path, cache_dir):
    done = bench_s3(s3_env, tmp_path, cache_dir, "run", "--suite", FAST, "--results", "s3://no-such-bucket/x")
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "cannot write results to s3://no-such-bucket/x" in done.stderr and "bucket does not exist" in done.stderr


# --- file:// ----------------------------------------------------------------------------------------------

def test_file_uri_is_the_local_store(tmp_path):
    uri = (tmp_path / "out").as_uri()
    written = store.write_case(Location.resolve(uri), "r1", NOW, 0, row("a"))
    assert written == f"{uri}/cases/date=2026-11-26/run_id=r1/00000-a.parquet"
    assert store.read_cases(Location.resolve(tmp_path / "out"), ["case_key"]).to_pylist() == [{"case_key": "a"}]
    assert store.read_cases(Location.resolve(uri), ["case_key"]).to_pylist() == [{"case_key": "a"}]
    assert Location.resolve(uri).local == tmp_path / "out"  # so writes take the temp file + fsync + rename path


def test_a_complete_run_compacts_into_one_object(s3):
    for index, key in enumerate(("a", "b")):
        store.write_case(Location.resolve(s3), "r1", NOW, index, row(key))
    store.write_run(Location.resolve(s3), "r1", {"run_id": "r1", "timestamp": NOW, "status": "complete"})
    assert compact_all(Location.resolve(s3)) == Compacted(runs=1, files=2)
    assert sorted(n for n in objects(s3) if n.startswith("cases/")) == [
        f"cases/date=2026-11-26/run_id=r1/{store.COMPACTED}"]
    assert store.read_cases(Location.resolve(s3), ["case_key"]).column("case_key").to_pylist() == ["a", "b"]


def test_store_defaults_bound_the_waits_and_keep_what_the_user_set():
    from bench.results.uri import GCS_RETRY_LIMIT_S, with_store_defaults

    assert with_store_defaults("gs://b/x") == f"gs://b/x?retry_limit_seconds={GCS_RETRY_LIMIT_S}"
    assert with_store_defaults("gs://b/x?retry_limit_seconds=99") == "gs://b/x?retry_limit_seconds=99"
    assert with_store_defaults("s3://b/x?region=eu") == "s3://b/x?region=eu&allow_delayed_open=true"
    assert with_store_defaults("file:///tmp/x") == "file:///tmp/x"


@pytest.mark.slow  # ~20 s: two bounded retry windows
def test_a_gcs_location_without_credentials_fails_in_one_line_instead_of_hanging(bench_cli):
    done = bench_cli("run", "--suite", FAST, "--results", "gs://bench-no-credentials/x", timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "gs://bench-no-credentials/x" in done.stderr
