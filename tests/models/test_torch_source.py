"""A PyTorch model as the source (``bench run --torch FILE.py:FACTORY``, bench.models.torchsource): bad input is one
line; the ONNX runtimes run the export and PyTorch's own paths the factory's module, every row checked against the
module's own fp32 output and naming its path; an export that fails is a conversion_failed row of every ONNX runner
naming the exporter, while the module's own paths still run."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from bench.case import ModelRef
from bench.cli import main
from bench.models.torchsource import FactoryRef

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "torch_cnn.py"
FAST = Path(__file__).resolve().parent.parent / "fixtures" / "fast.toml"
HAS_TORCH = all(importlib.util.find_spec(m) for m in ("torch", "onnxscript", "onnx2torch"))
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="torch, onnxscript or onnx2torch not installed")


@pytest.mark.parametrize(("flags", "said"), [
    (["--torch", "no/such.py:make"], "--torch 'no/such.py:make': no/such.py is not a file"),
    (["--torch", f"{FIXTURE}"], "expected FILE.py:FACTORY or package.module:FACTORY"),
    (["--torch", "pkg.mod:not-a-name"], "expected FILE.py:FACTORY or package.module:FACTORY"),
    (["--torch", f"{FIXTURE}:make", "--models", "tiny_cnn"], "--torch and --models are exclusive"),
])
def test_bad_torch_flags_are_one_line(flags, said, capsys):
    assert main(["run", "--dry-run", *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and said in err, err


def test_a_dry_run_plans_the_factory_without_calling_it(capsys):
    assert main(["run", "--dry-run", "--torch", f"{FIXTURE}:make", "--shape", "x:1x3x8x8",
                 "--runners", "onnxruntime,pytorch", "--precisions", "fp32", "--threads", "1",
                 "--scenarios", "latency"]) == 0
    out = capsys.readouterr().out
    assert "torch_cnn.make/onnxruntime/cpu/fp32/b1/t1/latency" in out and "torch_cnn.make/pytorch/" in out


@needs_torch
@pytest.mark.parametrize(("factory", "said"), [
    ("make_not_a_module", "make_not_a_module() returned str; expected an nn.Module"),
    ("nope", "no function 'nope' in"),
])
def test_a_factory_that_gives_no_module_is_one_line(factory, said, bench_cli):
    done = bench_cli("run", "--torch", f"{FIXTURE}:{factory}", "--shape", "x:1x3x8x8", "--runners", "onnxruntime",
                     "--suite", str(FAST))
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert said in done.stderr and done.stderr.startswith(f"bench: error: --torch {FIXTURE}:{factory}: ")


@needs_torch
def test_source_module_is_the_factorys_own_module():
    from bench.case import InputSpec
    from bench.runners.pytorch.conversion import source_module

    ref = FactoryRef.parse(f"{FIXTURE}:make")
    model = ModelRef(ref.name, "", "", (InputSpec("x", (1, 3, 8, 8), "float32", -1, 1, None),), "torch",
                     torch_factory=ref.to_json())
    source = source_module(model, Path("no.onnx"))  # the ONNX file is never read: no bridge
    assert type(source.module).__name__ == "TorchCNN" and source.origin == "factory"
    assert source.input_names == ["x"] and source.output_names == ["output"]


def rows_by_runner(results: Path) -> dict[str, dict]:
    import bench.results

    return {r["runner"]: r for r in bench.results.load(results).to_dict("records")}


@needs_torch
@pytest.mark.slow  # about 5 min on a loaded 2-core machine: eight runtimes, four of them compile
def test_every_path_runs_the_factorys_model_against_the_modules_output(bench_cli, tmp_path):
    runners = ["onnxruntime", "openvino", "ncnn", "mnn", "pytorch", "pytorch_compile", "executorch", "litert"]
    done = bench_cli("run", "--torch", f"{FIXTURE}:make", "--shape", "x:1x3x64x64", "--suite", str(FAST),
                     "--runners", ",".join(runners), "--results", str(tmp_path / "results"), "--timeout", "300",
                     timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = rows_by_runner(tmp_path / "results")
    assert sorted(rows) == sorted(runners)
    for runner, row in rows.items():
        assert row["status"] == "ok", (runner, row["error"])
        assert row["accuracy_ok"] is True, (runner, row["accuracy_reason"])
        assert row["reference_source"] == "the PyTorch module's fp32 eager output" and row["model_source"] == "torch"
        export = json.loads(row["torch_export"])
        assert export["exporter"] == "torch.onnx.export" and export["options"]["dynamo"] is True and not export["error"]
    assert rows["openvino"]["source_path"] == "PyTorch -> ONNX -> openvino"
    assert rows["executorch"]["source_path"] == "PyTorch -> ExecuTorch"
    assert rows["pytorch_compile"]["source_path"] == "PyTorch -> torch.compile"
    assert rows["litert"]["source_path"] == "PyTorch -> LiteRT"  # litert-torch converts the factory's module
    for runner in ("pytorch", "executorch"):  # the factory's module, never the onnx2torch bridge
        assert json.loads(rows[runner]["runner_facts"])["conversion_report"]["source"] == "factory"
    assert "PyTorch -> ONNX -> " in done.stdout  # the closing answer names the path


@needs_torch
@pytest.mark.slow  # about a minute: a failed export, the reference and one eager case
def test_an_export_failure_is_every_onnx_runners_row_and_the_module_still_runs(bench_cli, tmp_path):
    done = bench_cli("run", "--torch", f"{FIXTURE}:make_unexportable", "--shape", "x:1x3x16x16", "--suite",
                     str(FAST), "--runners", "onnxruntime,openvino,pytorch", "--results", str(tmp_path / "results"))
    assert done.returncode == 0, done.stderr[-3000:]
    rows = rows_by_runner(tmp_path / "results")
    for runner in ("onnxruntime", "openvino"):
        assert rows[runner]["status"] == "conversion_failed", rows[runner]
        assert rows[runner]["error"].startswith("torch.onnx.export (torch "), rows[runner]["error"]
        assert rows[runner]["source_path"] == f"PyTorch -> ONNX -> {runner}"
    assert rows["pytorch"]["status"] == "ok" and rows["pytorch"]["accuracy_ok"] is True, rows["pytorch"]["error"]


def test_reports_name_a_pytorch_models_path_and_keep_the_bridges_runner_name():
    from bench.report.labels import runner_label

    assert runner_label({"runner": "openvino", "source_path": "PyTorch -> ONNX -> openvino"}) == \
        "PyTorch -> ONNX -> openvino"
    assert runner_label({"runner": "executorch", "source_path": "PyTorch -> ExecuTorch"}) == "PyTorch -> ExecuTorch"
    assert runner_label({"runner": "pytorch", "source_path": "ONNX -> onnx2torch -> eager"}) == "pytorch"


@needs_torch
def test_inputs_come_from_the_example_or_from_shape_named_after_forwards_parameters():
    from bench.models.torchsource import FactoryError, input_specs, load_factory

    module, example, _ = load_factory(FactoryRef.parse(f"{FIXTURE}:make_with_example"))
    [spec] = input_specs(module, example, {})
    assert (spec.name, spec.shape, spec.dtype, spec.batch_axis) == ("x", (1, 3, 32, 32), "float32", None)
    assert input_specs(module, example, {"x": (2, 3, 16, 16)})[0].shape == (2, 3, 16, 16)  # --shape wins
    with pytest.raises(FactoryError, match=r"--shape names \['image'\], not parameters of forward\('x',\)"):
        input_specs(module, None, {"image": (1, 3, 8, 8)})
    with pytest.raises(FactoryError, match="give --shape NAME:1x3x224x224 for each input"):
        input_specs(module, None, {})
