"""ncnn int8 in Python: a port of ncnn's ``ncnn2table`` (method=aciq) and ``ncnn2int8`` (tools/quantize, Tencent/ncnn
20260526..20261020), which no PyPI wheel ships.

The table (``ncnn2table``, ``QuantNet::quantize_ACIQ``):
- each Convolution / ConvolutionDepthWise / InnerProduct gets one weight scale per output channel (per group for
  ConvolutionDepthWise): ``127 / aciq(max|w|, n)`` with ``n`` the weights of that channel, and ``31 / aciq(max|w|, n,
  6 bits)`` for a 3x3 stride-1 dilation-1 Convolution (ncnn's int8 winograd F43 needs 6-bit weights);
- each of those layers' input blob gets one scale, ``127 / aciq(max|x|, n)``: ``max|x|`` over the calibration samples
  run through the fp32 net, ``n`` the blob's c*h*w;
- ``aciq(absmax, n, bits) = alpha[bits] * absmax * 2 * 0.175 * (1 + sqrt(pi * ln 4)) / sqrt(2 ln n)`` (the Gaussian
  clip of Banner et al.'s ACIQ), written as ncnn2table writes it (``name_param_0 s s ...`` / ``name s``, ``%f``).

The int8 model (``ncnn2int8``): those layers' weights stored as int8 (tag 0x000D4B38, ``round(w * scale)`` clamped
to [-127, 127]), ``8=int8_scale_term`` in the .param (2 for Convolution / InnerProduct, 1 for ConvolutionDepthWise)
and the scales after the bias in the .bin; ``fuse_requantize`` adds 100 and the next layer's input scale when an
int8 convolution feeds another one (directly or through a Split). Where bench differs, and why:
- the layers left float keep their fp32 weights (ncnn2int8 rewrites them as fp16: PP-OCRv4 det holds a 9.8e7 weight);
- a layer whose scale is 0 or not finite (an all-zero input blob, a one-weight channel: ncnn's formula divides by
  ``ln 1``) stays float, where ncnn2int8 would write it; an all-zero weight channel, or one whose scale overflows
  (max|w| near 1e-38), gets scale 1 (ncnn's own rule for the static weight scales), not ``inf``.
Only those three layer types are quantized (ncnn2int8 also does Gemm, MultiHeadAttention, RNN/LSTM/GRU, Embed,
SDPA): ``Int8Model.other_quantizable`` counts what this port leaves float.

Each layer's bytes in the .bin are found by ncnn itself: the layer alone in a one-layer net, loaded from a reader that
counts what it reads, so every layer type's weight layout is ncnn's own. Run as a module in a subprocess (a converter
with a deadline): ``python -m bench.runners.ncnn.int8 FOLDER``, FOLDER holding the fp32 model, io.json and
calibration.npz; it writes model.int8.table, model.int8.param, model.int8.bin and int8.json there.
"""

from __future__ import annotations

import ctypes
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ncnn
import numpy as np

MAGIC = "7767517"
QUANTIZABLE = ("Convolution", "ConvolutionDepthWise", "InnerProduct")
# What ncnn2int8 quantizes besides, and this port does not.
OTHER_QUANTIZABLE = ("Gemm", "MultiHeadAttention", "RNN", "LSTM", "GRU", "Embed", "SDPA")
CONVOLUTIONS = ("Convolution", "ConvolutionDepthWise")
HISTOGRAM_FREE_METHOD = "aciq"
INT8_TAG = 0x000D4B38
ALPHA_GAUSSIAN = np.array([0, 1.71063519, 2.15159277, 2.55913646, 2.93620062, 3.28691474, 3.6151146, 3.92403714],
                          dtype=np.float32)
GAUSSIAN_CONST = (0.5 * 0.35) * (1 + math.sqrt(math.pi * math.log(4)))
TABLE, PARAM_OUT, BIN_OUT, SUMMARY, SAMPLES = (
    "model.int8.table", "model.int8.param", "model.int8.bin", "int8.json", "calibration.npz")


# ---- the .param file --------------------------------------------------------------------------------------


@dataclass
class Layer:
    """One line of a .param file; ``params`` keeps ncnn's ``id=value`` strings in their order."""

    type: str
    name: str
    bottoms: list[str]
    tops: list[str]
    params: dict[int, str] = field(default_factory=dict)

    def get(self, key: int, default: int) -> int:
        return int(self.params[key]) if key in self.params else default

    def line(self) -> str:
        head = [self.type, self.name, str(len(self.bottoms)), str(len(self.tops)), *self.bottoms, *self.tops]
        return " ".join([*head, *(f"{k}={v}" for k, v in self.params.items())])


def read_param(text: str) -> list[Layer]:
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != [MAGIC]:
        raise ValueError(f"not an ncnn text .param (first line is not {MAGIC})")
    layers = []
    for tokens in lines[2:]:
        nb, nt = int(tokens[2]), int(tokens[3])
        blobs = tokens[4:4 + nb + nt]
        params = {int(k): v for k, _, v in (t.partition("=") for t in tokens[4 + nb + nt:])}
        layers.append(Layer(tokens[0], tokens[1], blobs[:nb], blobs[nb:], params))
    return layers


def write_param(layers: list[Layer]) -> str:
    blobs = {blob for layer in layers for blob in (*layer.bottoms, *layer.tops)}
    return "\n".join([MAGIC, f"{len(layers)} {len(blobs)}", *(layer.line() for layer in layers)]) + "\n"


def int8_layers(param_text: str) -> dict[str, int]:
    """What a .param says about int8: layers of the quantizable types, those with ``int8_scale_term`` (8=), those
    that also requantize their output (8= above 100), and layers of the types only ncnn2int8 would quantize."""
    layers = read_param(param_text)
    quantizable = [layer for layer in layers if layer.type in QUANTIZABLE]
    return {"layers": len(quantizable), "int8_layers": sum(1 for layer in quantizable if layer.get(8, 0)),
            "requantized": sum(1 for layer in quantizable if layer.get(8, 0) > 100),
            "other_quantizable": sum(1 for layer in layers if layer.type in OTHER_QUANTIZABLE)}


# ---- where each layer's weights are in the .bin -----------------------------------------------------------


_capsule_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_pointer.restype, _capsule_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
_capsule_name = ctypes.pythonapi.PyCapsule_GetName
_capsule_name.restype, _capsule_name.argtypes = ctypes.c_char_p, [ctypes.py_object]


class _CountingReader(ncnn.DataReader):
    """Hands ncnn the .bin from ``start`` on and counts what it reads (the Python binding passes the destination
    buffer as a capsule)."""

    def __init__(self, data: bytes, start: int) -> None:
        super().__init__()
        self.data, self.pos = data, start

    def scan(self, format: str, p: Any) -> int:  # ncnn's name for it
        return 0

    def read(self, buf: Any, size: int) -> int:
        chunk = self.data[self.pos:self.pos + size]
        ctypes.memmove(_capsule_pointer(buf, _capsule_name(buf)), chunk, len(chunk))
        self.pos += len(chunk)
        return len(chunk)


def _quiet_option(opt: ncnn.Option) -> None:
    for name in ("use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic", "use_bf16_storage",
                 "use_vulkan_compute"):
        setattr(opt, name, False)
    opt.num_threads = 1


def layer_extents(layers: list[Layer], data: bytes) -> list[tuple[int, int]]:
    """Each layer's byte range in the .bin, as ncnn's own load_model of that layer reads it."""
    extents, pos = [], 0
    for layer in layers:
        net = ncnn.Net()
        _quiet_option(net.opt)
        feeds = [Layer("Input", f"bench_in{k}", [], [blob]) for k, blob in enumerate(layer.bottoms)]
        if net.load_param_mem(write_param([*feeds, layer])) != 0:
            raise ValueError(f"ncnn cannot load layer {layer.name} ({layer.type}) alone")
        reader = _CountingReader(data, pos)
        if net.load_model(reader) != 0 and reader.pos == pos and layer.type in QUANTIZABLE:
            raise ValueError(f"ncnn could not read the weights of {layer.name} ({layer.type})")
        extents.append((pos, reader.pos))
        pos = reader.pos
    if pos != len(data):
        raise ValueError(f"the layers read {pos} bytes of a {len(data)}-byte .bin")
    return extents


# ---- the table (ncnn2table, method=aciq) ------------------------------------------------------------------


def aciq_clip(absmax: float, count: int, bits: int = 8) -> np.float32:
    """ncnn2table's ``compute_aciq_gaussian_clip``: the std in double, the threshold in float."""
    std = (float(np.float32(absmax)) * 2 * GAUSSIAN_CONST) / math.sqrt(2 * math.log(count)) if count > 1 else math.inf
    return np.float32(float(ALPHA_GAUSSIAN[bits - 1]) * std)


def _winograd_6bit(layer: Layer) -> bool:
    """ncnn2table's condition for 6-bit weights (its int8 winograd F43): a 3x3 stride-1 dilation-1 Convolution."""
    kernel_w = layer.get(1, 0)
    dilation_w, stride_w = layer.get(2, 1), layer.get(3, 1)
    return (layer.type == "Convolution" and kernel_w == 3 and layer.get(11, kernel_w) == 3 and dilation_w == 1
            and layer.get(12, dilation_w) == 1 and stride_w == 1 and layer.get(13, stride_w) == 1)


def output_channels(layer: Layer) -> int:
    """How many weight scales the layer takes: per group for ConvolutionDepthWise, per output otherwise."""
    return layer.get(7, 1) if layer.type == "ConvolutionDepthWise" else layer.get(0, 0)


def weight_count(layer: Layer) -> int:
    """weight_data_size: param 2 of an InnerProduct, 6 of a convolution."""
    return layer.get(2 if layer.type == "InnerProduct" else 6, 0)


def fp32_weights(layer: Layer, data: bytes, extent: tuple[int, int]) -> np.ndarray:
    """The layer's weights as float32, one row per output channel (group); pnnx's fp32 layout: tag 0 then raw."""
    start, end = extent
    size = weight_count(layer)
    tag = int.from_bytes(data[start:start + 4], "little")
    if tag != 0 or end - start < 4 + size * 4:
        raise ValueError(f"{layer.name}: weights are not raw fp32 (tag {tag:#x}, {end - start} bytes)")
    return np.frombuffer(data, np.float32, size, start + 4).reshape(output_channels(layer), -1)


def weight_scales(layer: Layer, weights: np.ndarray) -> np.ndarray:
    bits, top = (6, np.float32(31)) if _winograd_6bit(layer) else (8, np.float32(127))
    absmax = np.abs(weights).max(axis=1)
    clips = np.array([aciq_clip(float(a), weights.shape[1], bits) for a in absmax], dtype=np.float32)
    with np.errstate(divide="ignore", over="ignore"):
        scales = top / clips
    # scale 1 for an all-zero channel (ncnn's rule for its static weight scales) and for one whose scale overflows
    # (max|w| near 1e-38: a dead channel, seen in PP-OCRv4 rec after BatchNorm folding): its int8 weights are then 0,
    # as its fp32 ones nearly are, where ncnn2table writes inf and leaves ncnn2int8 to cast inf to int8
    return np.where((absmax == 0) | ~np.isfinite(scales), np.float32(1), scales).astype(np.float32)


@dataclass
class BlobStat:
    absmax: float = 0.0
    total: int = 0


def activation_stats(net: ncnn.Net, feeds: list[list[tuple[str, np.ndarray, int]]],
                     blobs: list[str]) -> dict[str, BlobStat]:
    """Each blob's max |x| over the samples and its c*h*w (ncnn2table counts channels * rows * width)."""
    stats = {blob: BlobStat() for blob in blobs}
    for feed in feeds:
        ex = net.create_extractor()
        held = []  # ncnn.Mat(ndarray) does not keep the array alive: hold both until the extractor is done
        for name, array, batch_index in feed:
            held.append((array, ncnn.Mat(array, batch_index=batch_index).clone()))
            ex.input(name, held[-1][1])
        for blob in blobs:
            code, mat = ex.extract(blob)
            if code != 0:
                raise RuntimeError(f"ncnn extract({blob!r}) returned {code}")
            values = np.array(mat, copy=True)
            stat = stats[blob]
            stat.absmax = max(stat.absmax, float(np.abs(values).max()) if values.size else 0.0)
            stat.total = mat.c * mat.h * mat.w
    return stats


def input_scale(stat: BlobStat) -> np.float32:
    with np.errstate(divide="ignore"):
        return np.float32(127) / aciq_clip(stat.absmax, stat.total)


def format_table(weights: dict[str, np.ndarray], inputs: dict[str, np.float32]) -> str:
    """ncnn2table's file: every layer's weight scales, then every layer's input scale, ``%f`` each."""
    lines = [" ".join([f"{name}_param_0", *(f"{s:f}" for s in scales)]) + " " for name, scales in weights.items()]
    lines += [f"{name} {scale:f} " for name, scale in inputs.items()]
    return "\n".join(lines) + "\n"


def read_table(text: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """ncnn2int8's reading of a table: ``X_param_N`` lines are weight scales, the rest input scales."""
    weights: dict[str, np.ndarray] = {}
    inputs: dict[str, np.ndarray] = {}
    for line in text.splitlines():
        tokens = line.split()
        if not tokens:
            break
        values = np.array([float(t) for t in tokens[1:]], dtype=np.float32)
        (weights if "_param_" in tokens[0] else inputs)[tokens[0]] = values
    return weights, inputs


def make_table(layers: list[Layer], data: bytes, net: ncnn.Net,
               feeds: list[list[tuple[str, np.ndarray, int]]]) -> str:
    extents = layer_extents(layers, data)
    targets = [(layer, extent) for layer, extent in zip(layers, extents, strict=True)
               if layer.type in QUANTIZABLE and not layer.get(19, 0)]  # 19=dynamic_weight: no weights to quantize
    weights = {layer.name: weight_scales(layer, fp32_weights(layer, data, extent)) for layer, extent in targets}
    stats = activation_stats(net, feeds, sorted({layer.bottoms[0] for layer, _ in targets}))
    inputs = {layer.name: input_scale(stats[layer.bottoms[0]]) for layer, _ in targets}
    return format_table(weights, inputs)


# ---- the int8 model (ncnn2int8) ---------------------------------------------------------------------------


def quantize_to_int8(weights: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """ncnn's ``float2int8(w * scale)`` per row: the product in float, C's round (half away from zero), [-127, 127]."""
    product = (weights * scales[:, None].astype(np.float32)).astype(np.float64)
    rounded = np.trunc(product + np.copysign(0.5, product))
    return np.clip(rounded, -127, 127).astype(np.int8)


def _usable(*scales: np.ndarray) -> bool:
    return all(np.all(np.isfinite(s)) and np.all(s > 0) for s in scales)


@dataclass
class Int8Model:
    param: str
    bin: bytes
    quantized: list[str]
    kept_float: dict[str, str]
    requantized: list[str]


def _int8_bytes(layer: Layer, data: bytes, extent: tuple[int, int], scales: tuple[np.ndarray, np.ndarray]) -> bytes:
    weights = fp32_weights(layer, data, extent)
    q = quantize_to_int8(weights, scales[0]).reshape(-1).tobytes()
    rest = data[extent[0] + 4 + weights.size * 4:extent[1]]  # the bias, raw fp32
    return INT8_TAG.to_bytes(4, "little") + q + b"\0" * (-len(q) % 4) + rest + scales[0].tobytes() + \
        scales[1][:1].tobytes()


def _consumers(layers: list[Layer]) -> dict[str, int]:
    return {blob: i for i, layer in enumerate(layers) for blob in layer.bottoms}


def _first_conv_reading(layers: list[Layer], after: int, blob: str) -> int | None:
    """The first convolution after layer ``after`` that reads ``blob`` alone (ncnn2int8's scan)."""
    for j in range(after + 1, len(layers)):
        other = layers[j]
        if other.type in CONVOLUTIONS and len(other.bottoms) == 1 and other.bottoms[0] == blob:
            return j
    return None


def _first_split_of(layers: list[Layer], after: int, blob: str) -> int | None:
    return next((j for j in range(after + 1, len(layers)) if layers[j].type == "Split"
                 and len(layers[j].bottoms) == 1 and layers[j].bottoms[0] == blob), None)


def requantize_pairs(layers: list[Layer], int8: set[str]) -> list[tuple[int, int]]:
    """ncnn2int8's ``fuse_requantize``: (producer, consumer) where an int8 convolution feeds an int8 convolution
    directly, or through a Split whose every output goes to an int8 convolution (the first output's consumer then
    gives the scale)."""
    def both_int8(i: int, j: int | None) -> bool:
        return j is not None and layers[i].name in int8 and layers[j].name in int8

    pairs, consumers = [], _consumers(layers)
    convolutions = [i for i, layer in enumerate(layers) if layer.type in CONVOLUTIONS]
    for i in convolutions:
        j = _first_conv_reading(layers, i, layers[i].tops[0])
        if j is not None and both_int8(i, j):
            pairs.append((i, j))
    for i in convolutions:
        split = _first_split_of(layers, i, layers[i].tops[0])
        if split is None:
            continue
        readers = [_first_conv_reading(layers, split, top) for top in layers[split].tops]
        if any(r is None or layers[r].name not in int8 for r in readers):
            continue
        j = consumers.get(layers[split].tops[0])
        if j is not None and layers[j].type in CONVOLUTIONS and both_int8(i, j):
            pairs.append((i, j))
    return pairs


def quantize_model(param_text: str, data: bytes, table_text: str) -> Int8Model:
    layers = read_param(param_text)
    extents = layer_extents(layers, data)
    weights, inputs = read_table(table_text)
    chosen: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    kept: dict[str, str] = {}
    for layer in layers:
        if layer.type not in QUANTIZABLE or layer.name not in inputs:
            continue
        found = weights.get(f"{layer.name}_param_0")
        if found is None or len(found) != output_channels(layer):
            raise ValueError(f"{layer.name}: the table has no weight scales for its {output_channels(layer)} outputs")
        scales = (found, inputs[layer.name])
        if _usable(*scales):
            chosen[layer.name] = scales
        else:
            kept[layer.name] = "a scale of 0 or not finite (an all-zero input, or one weight per channel)"
    pairs = requantize_pairs(layers, set(chosen))
    requantize = {layers[i].name: chosen[layers[j].name][1] for i, j in pairs}
    parts = []
    for layer, extent in zip(layers, extents, strict=True):
        if layer.name not in chosen:
            parts.append(data[extent[0]:extent[1]])
            continue
        term = 1 if layer.type == "ConvolutionDepthWise" else 2
        layer.params[8] = str(term + (100 if layer.name in requantize else 0))
        parts.append(_int8_bytes(layer, data, extent, chosen[layer.name]))
        if layer.name in requantize:
            parts.append(requantize[layer.name][:1].tobytes())
    return Int8Model(write_param(layers), b"".join(parts), list(chosen), kept, list(requantize))


# ---- the converter's entry point ---------------------------------------------------------------------------


def _feeds(io: dict[str, Any], samples: np.lib.npyio.NpzFile) -> list[list[tuple[str, np.ndarray, int]]]:
    """Calibration samples as ncnn inputs, fed as the runner feeds them (io.json's names and batch_index)."""
    count = len({key.partition("/")[0] for key in samples.files})
    feeds = []
    for i in range(count):
        feed = []
        for item in io["inputs"]:
            dtype = np.int32 if item["dtype"].startswith(("i", "u", "b")) else np.float32
            array = np.ascontiguousarray(samples[f"{i}/{item['onnx']}"], dtype=dtype)
            feed.append((item["ncnn"], array.reshape(array.shape or (1,)), item["batch_index"]))
        feeds.append(feed)
    return feeds


def quantize_folder(folder: Path, param: str, weights: str) -> dict[str, Any]:
    """Table and int8 model for the fp32 model in ``folder``; returns (and writes) the summary."""
    param_text, data = (folder / param).read_text(), (folder / weights).read_bytes()
    layers = read_param(param_text)
    net = ncnn.Net()
    _quiet_option(net.opt)
    net.opt.lightmode = False  # as ncnn2table: every blob kept, extracted in turn
    if net.load_param(str(folder / param)) != 0 or net.load_model(str(folder / weights)) != 0:
        raise ValueError("ncnn could not load the fp32 model")
    with np.load(folder / SAMPLES) as samples:
        feeds = _feeds(json.loads((folder / "io.json").read_text()), samples)
    table = make_table(layers, data, net, feeds)
    (folder / TABLE).write_text(table)
    model = quantize_model(param_text, data, table)
    (folder / PARAM_OUT).write_text(model.param)
    (folder / BIN_OUT).write_bytes(model.bin)
    summary = {"quantized": len(model.quantized), "kept_float": model.kept_float,
               "requantized": len(model.requantized), **int8_layers(model.param)}
    (folder / SUMMARY).write_text(json.dumps(summary, indent=1))
    return summary


def main(argv: list[str]) -> int:
    folder, param, weights = Path(argv[0]), argv[1], argv[2]
    try:
        quantize_folder(folder, param, weights)
    except (ValueError, RuntimeError) as exc:
        print(f"ncnn int8: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
