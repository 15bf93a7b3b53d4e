"""ncnn int8 without ncnn's tools: bench's Python port of ncnn2table (ACIQ) and ncnn2int8, checked against the
definition (numpy, written here from ncnn2table's source), against ncnn's own load-time quantization, and through
real workers on the zoo's models."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from bench.runners.ncnn import SPEC

pytestmark = pytest.mark.skipif(not SPEC.available().ok, reason=f"ncnn runner unavailable: {SPEC.available().reason}")

ncnn = pytest.importorskip("ncnn")
from bench.runners.ncnn import int8  # noqa: E402 (needs ncnn)

# A small CNN written directly in ncnn's format: a 3x3 stride-1 conv (ncnn2table's 6-bit winograd case), a
# depthwise conv, a Split feeding two 1x1 convs (requantize through a Split), a BinaryOp and an InnerProduct.
PARAM = """7767517
8 10
Input in0 0 1 in0
Convolution conv0 1 1 in0 c0 0=8 1=3 4=1 5=1 6=216 9=1
ConvolutionDepthWise dw0 1 1 c0 d0 0=8 1=3 3=2 4=1 5=1 6=72 7=8 9=1
Split split0 1 2 d0 s0 s1
Convolution conv1 1 1 s0 c1 0=16 1=1 5=1 6=128
Convolution conv2 1 1 s1 c2 0=16 1=1 5=1 6=128
BinaryOp add0 2 1 c1 c2 a0 0=0
InnerProduct fc0 1 1 a0 out0 0=10 1=1 2=2560
"""
SHAPES = {"conv0": (8, 27), "dw0": (8, 9), "conv1": (16, 8), "conv2": (16, 8), "fc0": (10, 256)}
INPUT = (3, 8, 8)


def small_model(folder: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """The .param/.bin above with seeded weights; returns the weights by layer."""
    rng = np.random.default_rng(seed)
    weights = {name: (rng.standard_normal(shape) * 0.3).astype(np.float32) for name, shape in SHAPES.items()}
    weights["conv1"][3] = 0.0  # an all-zero channel: ncnn's static-scale rule gives it scale 1
    weights["conv2"][5] = 1e-39  # a dead channel whose scale overflows float (PP-OCRv4 rec has such): scale 1 too
    parts = []
    for w in weights.values():
        parts += [np.uint32(0).tobytes(), w.tobytes(), (rng.standard_normal(w.shape[0]) * 0.1).astype(np.float32)
                  .tobytes()]
    (folder / "model.ncnn.param").write_text(PARAM)
    (folder / "model.ncnn.bin").write_bytes(b"".join(parts))
    (folder / "io.json").write_text(json.dumps({"inputs": [{"ncnn": "in0", "onnx": "x", "dtype": "f32",
                                                            "batch_index": 0, "shape": [1, *INPUT]}]}))
    return weights


def samples(count: int = 4, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.uniform(-1, 1, (1, *INPUT)).astype(np.float32) * (i + 1) for i in range(count)]


def quantized(folder: Path) -> dict:
    np.savez(folder / int8.SAMPLES, **{f"{i}/x": x for i, x in enumerate(samples())})
    return int8.quantize_folder(folder, "model.ncnn.param", "model.ncnn.bin")


def expected_aciq(absmax: float, n: int, bits: int) -> float:
    """ACIQ's Gaussian clip as ncnn2table writes it: alpha(bits) * absmax * 2 * 0.175 * (1 + sqrt(pi ln 4)) /
    sqrt(2 ln n), alpha(8) = 3.92403714, alpha(6) = 3.28691474."""
    alpha = {8: 3.92403714, 6: 3.28691474}[bits]
    return alpha * absmax * 2 * 0.175 * (1 + math.sqrt(math.pi * math.log(4))) / math.sqrt(2 * math.log(n))


def run(folder: Path, param: str, weights: str, x: np.ndarray, int8_inference: bool) -> np.ndarray:
    net = ncnn.Net()
    for name in ("use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic", "use_bf16_storage"):
        setattr(net.opt, name, False)
    net.opt.use_int8_inference = int8_inference
    assert net.load_param(str(folder / param)) == 0 and net.load_model(str(folder / weights)) == 0
    ex = net.create_extractor()
    mat = ncnn.Mat(x, batch_index=0)  # x and mat held until extract returns: ncnn.Mat(ndarray) keeps no reference
    ex.input("in0", mat)
    code, out = ex.extract("out0")
    assert code == 0
    return np.array(out).ravel()


def test_the_table_is_ncnn2tables_aciq_from_the_definition(tmp_path):
    weights = small_model(tmp_path)
    quantized(tmp_path)
    table = (tmp_path / int8.TABLE).read_text()
    lines = table.splitlines()
    # ncnn2table's layout: every layer's weight scales first, then every layer's input scale, "%f " each
    assert [line.split()[0] for line in lines] == [*(f"{n}_param_0" for n in SHAPES), *SHAPES]
    assert all(line.endswith(" ") and all(len(v.split(".")[1]) == 6 for v in line.split()[1:]) for line in lines)
    table_w, table_in = int8.read_table(table)
    for name, w in weights.items():
        bits = 6 if name == "conv0" else 8  # conv0 is the only 3x3 stride-1 Convolution
        absmax = np.abs(w).max(axis=1).astype(np.float64)
        want = [1.0 if a < 1e-30 else (2 ** (bits - 1) - 1) / expected_aciq(a, w.shape[1], bits) for a in absmax]
        np.testing.assert_allclose(table_w[f"{name}_param_0"], want, rtol=1e-5, atol=1e-6, err_msg=name)
    # the first layer's input is the calibration data itself: max |x| over the samples, n = c*h*w
    absmax = max(float(np.abs(x).max()) for x in samples())
    np.testing.assert_allclose(table_in["conv0"], [127 / expected_aciq(absmax, int(np.prod(INPUT)), 8)], rtol=1e-5)


def test_the_formula_on_known_statistics():
    # absmax 1 over 1000 values: 3.92403714 * 2 * 0.175 * (1 + sqrt(pi ln 4)) / sqrt(2 ln 1000)
    #   = 3.92403714 * 1.0804167 / 3.7169221 = 1.140620
    assert float(int8.aciq_clip(1.0, 1000)) == pytest.approx(1.140620, rel=1e-4)
    assert float(int8.aciq_clip(2.0, 1000)) == pytest.approx(2 * 1.140620, rel=1e-4)
    assert float(int8.aciq_clip(1.0, 1000, bits=6)) == pytest.approx(1.140620 * 3.28691474 / 3.92403714, rel=1e-4)
    assert math.isinf(float(int8.aciq_clip(1.0, 1)))  # ln 1 = 0: such a layer is kept float (below)


def test_the_int8_model_reads_back_loads_and_is_ncnns_own_quantization(tmp_path):
    small_model(tmp_path)
    summary = quantized(tmp_path)
    written = (tmp_path / int8.PARAM_OUT).read_text()
    back = int8.int8_layers(written)
    assert back["layers"] == 5 and back["int8_layers"] == 5, back  # 0 without quantization
    terms = {layer.name: layer.get(8, 0) for layer in int8.read_param(written)}
    # conv0 -> dw0 requantizes directly; dw0 -> Split -> conv1, conv2 requantizes through the Split
    assert terms == {"in0": 0, "conv0": 102, "dw0": 101, "split0": 0, "conv1": 2, "conv2": 2, "add0": 0, "fc0": 2}
    assert summary["requantized"] == 2 and summary["kept_float"] == {}
    x = samples(1, seed=9)[0]
    fp32 = run(tmp_path, "model.ncnn.param", "model.ncnn.bin", x, False)
    ours = run(tmp_path, int8.PARAM_OUT, int8.BIN_OUT, x, True)
    assert not np.array_equal(ours, fp32)
    cosine = float(ours @ fp32 / np.linalg.norm(ours) / np.linalg.norm(fp32))
    assert cosine > 0.97, cosine
    # The same .param with the fp32 weights and the table's scales: ncnn quantizes those weights itself at load
    # (Convolution::load_model's "runtime quantize"); our int8 bytes must give the very same outputs.
    _write_fp32_weights_with_scales(tmp_path, "runtime.bin")
    assert np.array_equal(run(tmp_path, int8.PARAM_OUT, "runtime.bin", x, True), ours)


def _write_fp32_weights_with_scales(folder: Path, name: str) -> None:
    layers = int8.read_param((folder / int8.PARAM_OUT).read_text())
    data = (folder / "model.ncnn.bin").read_bytes()
    extents = int8.layer_extents(int8.read_param((folder / "model.ncnn.param").read_text()), data)
    scales_w, scales_in = int8.read_table((folder / int8.TABLE).read_text())
    pairs = int8.requantize_pairs(layers, {layer.name for layer in layers if layer.get(8, 0)})
    top = {layers[i].name: scales_in[layers[j].name] for i, j in pairs}
    parts = []
    for layer, (start, end) in zip(layers, extents, strict=True):
        parts.append(data[start:end])
        if layer.get(8, 0):
            parts += [scales_w[f"{layer.name}_param_0"].tobytes(), scales_in[layer.name].tobytes()]
        if layer.get(8, 0) > 100:
            parts.append(top[layer.name].tobytes())
    (folder / name).write_bytes(b"".join(parts))


def test_a_layer_whose_scale_is_unusable_stays_float_and_says_so(tmp_path):
    small_model(tmp_path)
    quantized(tmp_path)
    param, data = (tmp_path / "model.ncnn.param").read_text(), (tmp_path / "model.ncnn.bin").read_bytes()
    # what ncnn2table writes for an all-zero input blob: 127 / 0
    table = "".join("fc0 inf \n" if line.startswith("fc0 ") else line
                    for line in (tmp_path / int8.TABLE).read_text().splitlines(True))
    model = int8.quantize_model(param, data, table)
    assert list(model.kept_float) == ["fc0"] and len(model.quantized) == 4
    assert int8.int8_layers(model.param)["int8_layers"] == 4


def test_a_bin_that_does_not_fit_the_param_is_refused(tmp_path):
    small_model(tmp_path)
    param, data = (tmp_path / "model.ncnn.param").read_text(), (tmp_path / "model.ncnn.bin").read_bytes()
    with pytest.raises(ValueError, match="bytes of a"):
        int8.layer_extents(int8.read_param(param), data + b"\0" * 8)


# ---- through bench: real workers, the shared calibration set ----------------------------------------------


def test_int8_rows_run_ncnns_int8_layers_read_back_with_the_recipe(run_cases):
    both = {r["precision"]: r for r in run_cases(["ncnn"], ["tiny_cnn"], precisions=["fp32", "int8"])}
    row = both["int8"]
    assert row["status"] == "ok", row.get("error") or row.get("stderr_tail")
    assert row["precision_used"] == "int8" and row["calibration_sha256"]
    facts = json.loads(row["runner_facts"])
    assert facts["options"]["use_int8_inference"] is True and facts["options"]["use_fp16_storage"] is False
    readback = facts["int8_readback"]
    assert readback["int8_layers"] > 0 and readback["layers"] >= readback["int8_layers"], readback
    options = json.loads(row["conversion_options"])
    assert options["method"] == "aciq" and options["source_conversion"]["fp16"] == 0
    assert options["recipe"] == (f"ncnn2table port: ACIQ activations, per-channel weights; "
                                 f"{readback['int8_layers']} of {readback['layers']} convolutions int8")
    assert "limited_by" not in options  # tiny_cnn: every convolution int8, nothing else ncnn2int8 would touch
    assert row["cosine"] is not None and row["cosine"] < 1.0 and row["cosine"] > 0.97, row["cosine"]
    assert json.loads(both["fp32"]["runner_facts"])["int8_readback"] is None
    again = run_cases(["ncnn"], ["tiny_cnn"], precisions=["int8"])[0]
    assert again["conversion_cached"] is True and again["status"] == "ok"
    assert json.loads(again["conversion_options"])["recipe"] == options["recipe"]


@pytest.mark.slow  # ~1 min: calibration + timing of MobileNetV2
def test_mobilenet_v2_int8_is_close_to_fp32(run_cases):
    row = run_cases(["ncnn"], ["mobilenet_v2"], precisions=["int8"], max_time_s=1.0)[0]
    assert row["status"] == "ok", row.get("error") or row.get("stderr_tail")
    readback = json.loads(row["runner_facts"])["int8_readback"]
    assert readback == {"layers": 53, "int8_layers": 53, "requantized": readback["requantized"],
                        "other_quantizable": 0}
    assert row["cosine"] > 0.95, row["cosine"]
