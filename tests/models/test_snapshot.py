"""A user's model is all of its bytes: external data in its hash, never read from outside its folder, and run
from bench's own copy, so a file changed or replaced during a run cannot poison the cache."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from bench.cache import sha256_file
from bench.errors import UserError
from bench.models.user import user_model
from bench.plan import Overrides, plan
from bench.registry import Registry
from bench.results.uri import Location
from bench.run import RunInfo, execute
from bench.suite import Suite, TimingConfig


def matmul_model(path: Path, scale: float = 1.0, external: bool = False) -> Path:
    """y = x @ (scale * w), x of shape 1x4: models that differ in their weights only."""
    w = numpy_helper.from_array(scale * np.arange(16, dtype=np.float32).reshape(4, 4) / 16, "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "user",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if external:
        onnx.save(model, str(path), save_as_external_data=True, location=f"{path.name}.data", size_threshold=0)
    else:
        onnx.save(model, str(path))
    return path


def pointing_at(path: Path, location: str) -> Path:
    """The model at ``path`` with its tensor's external data location rewritten to ``location``."""
    model = onnx.load(str(path), load_external_data=False)
    for entry in model.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = location
    onnx.save(model, str(path))
    return path


def fast_suite(runners: list[str]) -> Suite:
    return Suite(name="model", models=["tiny_cnn"], runners=runners, precisions=["fp32"], devices=["cpu"], threads=[1],
                 scenarios=["latency"], batch_sizes=[1], timeout_s=120,
                 timing=TimingConfig(warmup_time_s=0.01, min_time_s=0.05, max_time_s=0.2))


def run_user_model(path: Path, cache: Path, results: Path, runners: list[str]) -> list[dict]:
    planned = plan(fast_suite(runners), "model", Overrides(user_model=path), Registry.default(), cache)
    return execute(planned, Location.resolve(results), RunInfo.new("model", []), Registry.default(),
                   stream=io.StringIO())


def test_external_data_is_part_of_the_models_identity(tmp_path):
    path = matmul_model(tmp_path / "m.onnx", external=True)
    before = user_model(path, {}).sha256
    data = tmp_path / "m.onnx.data"
    data.write_bytes(data.read_bytes()[::-1])  # other weights, same size, same .onnx bytes
    assert user_model(path, {}).sha256 != before
    plain = matmul_model(tmp_path / "plain.onnx")
    assert user_model(plain, {}).sha256 == sha256_file(plain)  # without external data, the hash it always had


def test_the_snapshot_holds_every_byte_and_is_what_was_hashed(tmp_path):
    path = matmul_model(tmp_path / "m.onnx", external=True)
    ref = user_model(path, {}, cache_dir=tmp_path / "cache")
    copy = Path(ref.path)
    assert copy == tmp_path / "cache" / "user" / ref.sha256 / "m.onnx"
    assert (copy.parent / "m.onnx.data").read_bytes() == (tmp_path / "m.onnx.data").read_bytes()
    assert user_model(path, {}).sha256 == ref.sha256  # the copy hashes as the original does


def test_a_users_copy_of_a_zoo_model_leaves_the_zoos_folder_alone(tmp_path):
    """Same bytes, another name: the zoo keeps cache/onnx/<sha256>/<zoo name>.onnx while a user's run has its copy."""
    path = matmul_model(tmp_path / "mine.onnx")
    zoo_copy = tmp_path / "cache" / "onnx" / sha256_file(path) / "zoo_name.onnx"
    zoo_copy.parent.mkdir(parents=True)
    zoo_copy.write_bytes(path.read_bytes())
    ref = user_model(path, {}, cache_dir=tmp_path / "cache")
    assert zoo_copy.is_file() and Path(ref.path).is_file() and Path(ref.path) != zoo_copy


@pytest.mark.slow  # two real runs, ~10 s
def test_changed_external_weights_get_their_own_reference(tmp_path):
    path = matmul_model(tmp_path / "m.onnx", external=True)
    first = run_user_model(path, tmp_path / "cache", tmp_path / "out", ["onnxruntime"])
    data = tmp_path / "m.onnx.data"
    data.write_bytes((np.frombuffer(data.read_bytes(), np.float32) * 3).tobytes())  # new weights, same .onnx
    second = run_user_model(path, tmp_path / "cache", tmp_path / "out", ["onnxruntime"])
    # the fp32 reference of the old weights was reused before: ONNX Runtime was flagged WRONG on the new ones
    assert [r["accuracy_ok"] for r in first + second] == [True, True], [r["accuracy_reason"] for r in second]
    assert first[0]["model_sha256"] != second[0]["model_sha256"]


def outside_locations(tmp_path: Path) -> dict[str, str]:
    """Each way a location can leave the model's folder, set up with a secret beside the folder."""
    (tmp_path / "secret.bin").write_bytes(b"s3cret!!" * 8)
    os.symlink(tmp_path, tmp_path / "model" / "up")  # a folder link inside, leading out
    os.symlink(tmp_path / "secret.bin", tmp_path / "model" / "w.bin")  # the data file itself a link
    os.symlink("loop", tmp_path / "model" / "loop")  # resolving it never ends
    return {"dotdot": "../secret.bin", "absolute": str(tmp_path / "secret.bin"), "folder link": "up/secret.bin",
            "file link": "w.bin", "link loop": "loop/w.bin"}


@pytest.mark.parametrize("form", ["dotdot", "absolute", "folder link", "file link", "link loop"])
def test_external_data_outside_the_models_folder_is_refused(tmp_path, form):
    (tmp_path / "model").mkdir()
    path = matmul_model(tmp_path / "model" / "m.onnx", external=True)
    location = outside_locations(tmp_path)[form]
    pointing_at(path, location)
    for cache in (None, tmp_path / "cache"):
        with pytest.raises(UserError) as err:
            user_model(path, {}, cache_dir=cache)
        message = str(err.value)
        assert f"{path}: tensor 'w' has its external data at {location!r}" in message and "\n" not in message
        assert "only from files inside the model's folder" in message
    leaked = [f for f in (tmp_path / "cache").rglob("*") if f.is_file() and b"s3cret" in f.read_bytes()]
    assert not leaked and not list((tmp_path / "cache" / "user").iterdir())  # nothing copied, nothing left


def test_an_outside_location_is_one_line_through_the_cli(bench_cli, tmp_path):
    (tmp_path / "model").mkdir()
    path = pointing_at(matmul_model(tmp_path / "model" / "m.onnx", external=True), "../secret.bin")
    (tmp_path / "secret.bin").write_bytes(bytes(64))
    done = bench_cli("run", "--model", str(path), "--runners", "onnxruntime", "--results", "out")
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "'../secret.bin', a path out of the model's folder ('..')" in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # three real runs (ONNX Runtime and MNN's converter), ~20 s
def test_a_model_replaced_during_a_run_does_not_poison_the_cache(tmp_path):
    path = matmul_model(tmp_path / "m.onnx")
    original = path.read_bytes()
    cache, runners = tmp_path / "cache", ["onnxruntime", "mnn"]
    planned = plan(fast_suite(runners), "model", Overrides(user_model=path), Registry.default(), cache)
    matmul_model(path, scale=3.0)  # replaced after planning, before any worker ran
    rows = execute(planned, Location.resolve(tmp_path / "out"), RunInfo.new("model", []), Registry.default(),
                   stream=io.StringIO())
    assert {r["model_sha256"] for r in rows} == {hashlib.sha256(original).hexdigest()}
    path.write_bytes(original)  # the original again: its reference and MNN's cached conversion must be its own
    again = run_user_model(path, cache, tmp_path / "out", runners)
    by_runner = {r["runner"]: r for r in again}
    assert by_runner["mnn"]["conversion_cached"] is True
    # before: the replaced file was converted and its reference computed under the original's hash, so
    # ONNX Runtime (reading the original) was WRONG and MNN (cached replacement) was "correct"
    assert all(r["accuracy_ok"] for r in rows + again), [(r["runner"], r["accuracy_reason"]) for r in rows + again]

