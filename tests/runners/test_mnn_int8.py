"""MNN int8 at its best (issue 31): the recipe rule (EMA; KL keeping float the convolutions MNN's weight encoder
would zero), the row's recipe and limited_by, and the build probe (which int8 kernels the loaded MNN library holds),
all with the real quantizer and the real library."""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from bench.cpu import Cpu
from bench.runners.mnn import SPEC, build, recipe

pytestmark = pytest.mark.skipif(not SPEC.available().ok, reason=f"MNN runner unavailable: {SPEC.available().reason}")
X86 = platform.machine().lower() in ("x86_64", "amd64")


def tiny_head_model(path: Path, save_graph) -> Path:
    """conv -> relu -> conv + BatchNorm whose variance 1e10 folds every weight of the second conv to ~1e-5 (channel
    scale ~1e-7 <= MNN's 1e-6, like PP-OCRv4 det's head) -> Mul 1e5: the output depends on those tiny weights."""
    rng = np.random.RandomState(0)
    arrays = {"wa": rng.uniform(-1, 1, (8, 3, 3, 3)), "wb": rng.uniform(-1, 1, (4, 8, 3, 3)), "gamma": np.ones(4),
              "beta": np.zeros(4), "mean": np.zeros(4), "var": np.full(4, 1e10), "gain": np.array(1e5)}
    weights = [numpy_helper.from_array(a.astype(np.float32), name) for name, a in arrays.items()]
    nodes = [helper.make_node("Conv", ["x", "wa"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["ra"]),
             helper.make_node("Conv", ["ra", "wb"], ["tiny"], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["tiny", "gamma", "beta", "mean", "var"], ["bn"]),
             helper.make_node("Mul", ["bn", "gain"], ["y"])]
    f = TensorProto.FLOAT
    return save_graph(path, nodes, [helper.make_tensor_value_info("x", f, [1, 3, 16, 16])],
                      [helper.make_tensor_value_info("y", f, [1, 4, 16, 16])], weights)


def test_the_rule_flags_only_convolutions_whose_live_channels_mnn_would_zero(tmp_path, save_graph):
    model = tiny_head_model(tmp_path / "tiny_head.onnx", save_graph)
    assert recipe.tiny_channel_convolutions(model) == ["tiny"]  # the MNN op name: the conv's output, BN folded in
    chosen = recipe.choose(model)
    assert chosen.method == "KL" and chosen.float_convolutions == ("tiny",)
    assert chosen.limit() == "runtime defect: MNN zeroes weight channels with scale <= 1e-06; 1 layers kept float"
    dead = np.ones((4, 9))
    dead[1] = 1e-9  # a dead channel: int8 over the layer would zero it too
    assert not recipe._zeroes_a_live_channel(dead) and recipe._zeroes_a_live_channel(np.full((4, 9), 1e-5))


def test_a_conv_mnn_would_zero_is_kept_float_and_int8_stays_close_to_fp32(run_user_model, tmp_path, save_graph):
    row = run_user_model("mnn", tiny_head_model(tmp_path / "tiny_head.onnx", save_graph), "--precisions", "int8")
    assert row["status"] == "ok", row.get("error")
    options = json.loads(row["conversion_options"])
    assert options["feature_quantize_method"] == "KL" and options["tiny_channel_convolutions"] == ["tiny"]
    assert options["quant_bits"] == 8 and "1 convolution(s) whose weight channels MNN would zero" in options["recipe"]
    assert options["limited_by"].startswith("runtime defect: MNN zeroes weight channels with scale <= 1e-06; "
                                            "1 layers kept float")
    readback = json.loads(row["runner_facts"])["int8_readback"]
    assert readback["kept_float"] == 1 and readback["int8_convolutions"] == 1, readback  # the first conv is int8
    assert row["accuracy_ok"] is True and row["cosine"] > 0.99, (row["cosine"], row["accuracy_reason"])


# The same model quantized without the guard (the rule's EMA, or KL with nothing skipped), run by MNN: the tiny
# conv's weights come back as zeros, so the output is nothing like fp32's.
COSINE_SCRIPT = """
import sys
import numpy as np
import MNN.expr as F
import MNN.nn as nn
import onnxruntime as ort
x = np.random.RandomState(1).uniform(-1, 1, (1, 3, 16, 16)).astype(np.float32)
ref = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"]).run(None, {"x": x})[0].ravel()
var = F.placeholder([1, 3, 16, 16], F.NCHW, F.float)
var.write(x)
out = nn.load_module_from_file(sys.argv[2], ["x"], ["y"]).onForward([var])[0]
out = np.array(F.convert(out, F.NCHW).read(), copy=True).ravel()
norm = float(np.linalg.norm(out) * np.linalg.norm(ref))
sys.stderr.write(f"COSINE {float(out @ ref) / norm if norm else 0.0}\\n")
"""


@pytest.mark.parametrize("unguarded", [recipe.Recipe("EMA"), recipe.Recipe("KL")], ids=["EMA", "KL"])
def test_without_the_guard_mnn_int8_destroys_that_conv(cache_dir, tmp_path, save_graph, unguarded):
    from test_mnn import tiny_cnn_case

    from bench.runners.mnn import quantize
    from bench.runners.mnn.runner import CONVERT_SCRIPT, CONVERTER_ARGS

    model = tiny_head_model(tmp_path / "tiny_head.onnx", save_graph)
    fp32, int8 = tmp_path / "fp32.mnn", tmp_path / "int8.mnn"
    subprocess.run([sys.executable, "-c", CONVERT_SCRIPT, str(model), str(fp32), *CONVERTER_ARGS], check=True,
                   capture_output=True, timeout=120, cwd=tmp_path)
    samples = [{"x": np.random.RandomState(i).uniform(-1, 1, (1, 3, 16, 16)).astype(np.float32)} for i in range(4)]
    quantize.quantize(tiny_cnn_case(cache_dir), samples, fp32, int8, unguarded)
    cosines = {}
    for name, path in (("fp32", fp32), ("int8", int8)):
        done = subprocess.run([sys.executable, "-c", COSINE_SCRIPT, str(model), str(path)], capture_output=True,
                              text=True, timeout=120)
        cosines[name] = float(done.stderr.rpartition("COSINE ")[2])
    assert cosines["fp32"] > 0.9999 and cosines["int8"] < 0.5, cosines


def test_the_rule_picks_ema_for_a_plain_conv_net_and_the_row_names_its_recipe_and_limit(run_cases):
    row = run_cases(["mnn"], ["tiny_cnn"], precisions=["int8"])[0]
    assert row["status"] == "ok", row.get("error")
    options = json.loads(row["conversion_options"])
    assert options["feature_quantize_method"] == "EMA" and options["tiny_channel_convolutions"] == []
    assert options["recipe"].startswith("EMA activations") and options["quant_bits"] == 8
    library = json.loads(row["runner_facts"])["mnn_library"]
    assert library["libraries"], library  # the worker found the MNN library it loaded
    # limited_by follows the probe of the loaded library and this CPU's flags, whatever machine runs this
    expected = build.build_limit(library, Cpu.here())
    assert options.get("limited_by") == expected
    vnni_cpu = X86 and "avx512_vnni" in Cpu.here().flags
    vnni_build = any((lib["vnni_instructions"] or {}).get("avx512_vnni") for lib in library["libraries"])
    assert (expected is not None) == (vnni_cpu and not vnni_build and X86)


LIBRARY_SCRIPT = "import sys, json, MNN\nfrom bench.runners.mnn import build\n" \
                 "sys.stderr.write('FACTS ' + json.dumps(build.library_facts()) + '\\n')\n"


def loaded_library_facts() -> dict:
    done = subprocess.run([sys.executable, "-c", LIBRARY_SCRIPT], capture_output=True, text=True, timeout=120)
    return json.loads(done.stderr.rpartition("FACTS ")[2])


def wheel_files() -> set[str]:
    return {str(Path(f.locate()).resolve()) for f in metadata.files("MNN") or []}


@pytest.mark.skipif(not X86, reason="the probe reads x86 machine code")
def test_the_pypi_wheel_holds_no_avx512_vnni_int8_kernel():
    libraries = loaded_library_facts()["libraries"]
    from_wheel = [lib for lib in libraries if str(Path(lib["path"]).resolve()) in wheel_files()]
    if not from_wheel:
        pytest.skip(f"the MNN loaded here is not a PyPI wheel's: {[lib['path'] for lib in libraries]}")
    for lib in from_wheel:
        assert lib["vnni_instructions"] == {"avx512_vnni": 0, "avx_vnni": 0}, lib


def objdump_count(path: Path) -> tuple[int, int]:
    """EVEX and VEX vpdpbusd(s) in ``objdump -d``'s listing (the first byte of an instruction says its form)."""
    done = subprocess.run(["objdump", "-d", str(path)], capture_output=True, text=True, timeout=300, check=True)
    firsts = [line.split("\t")[1].split()[0] for line in done.stdout.splitlines()
              if "vpdpbus" in line and line.count("\t") >= 2]
    return firsts.count("62"), firsts.count("c4")


@pytest.mark.slow
@pytest.mark.skipif(not X86 or not shutil.which("objdump"), reason="needs x86 and objdump")
def test_the_probe_counts_what_objdump_disassembles():
    import onnxruntime

    with_vnni = next(Path(onnxruntime.__file__).parent.glob("capi/libonnxruntime.so*"))  # MLAS has VNNI kernels
    mnn = Path(loaded_library_facts()["libraries"][0]["path"])
    for path in (with_vnni, mnn):
        counts = build.vnni_instructions(path)
        assert (counts["avx512_vnni"], counts["avx_vnni"]) == objdump_count(path), path
    assert build.vnni_instructions(with_vnni)["avx512_vnni"] > 0
