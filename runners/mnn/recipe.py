"""MNN's int8 recipe for a model, chosen by a rule read from the model's weights (never tuned on evaluation data).

The rule:

1. **EMA** for activations (``feature_quantize_method = "EMA"``: asymmetric, per tensor, on convolution inputs and
   outputs only) with MAX_ABS weights (symmetric, per output channel). MNN's default, KL, attaches int8 parameters
   to nearly every tensor (PP-OCRv4 rec: 473 of 633), so MNN runs long int8 element-wise chains, and its thresholds
   clip text images (rec exact match 0.0, EMA 0.99); KL also segfaults MNN's quantizer on shufflenet, MiniLM and
   silero-vad, EMA does not.
2. **Unless a convolution has weight channels MNN would destroy.** MNN's weight encoder stores a channel whose scale
   (``max|w| / 127``, on the weights after the converter folds a following BatchNormalization into them:
   ``w * gamma / sqrt(var + eps)``) is at most 1e-6 as zeros. That is harmless for a dead channel (one int8 could
   not represent beside the layer's largest channel either), and destroys a layer whose channels are all small:
   PP-OCRv4 det's head conv after a 9.79e7 variance is folded (16 of 24 channels; F1 0 in every MNN int8 form).
   Such convolutions must stay float, and EMA ignores ``skip_quant_op_names``: the model gets **KL** with every
   non-convolution op and the flagged convolutions in ``skip_quant_op_names`` (int8 only in convolutions, as EMA
   does). Measured: det F1 1.0.

``quant_bits`` stays 8: below it the MNN wheel's faster 7-bit x86 kernel gives wrong output (cosine 0.45).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.execution.graph import load_graph

if TYPE_CHECKING:
    import onnx

# MNN's weight encoder: a channel whose scale (max|w| / WEIGHT_LEVELS) is at most this is stored as zeros.
TINY_SCALE = 1e-6
WEIGHT_LEVELS = 127
CONV_OPS = ("Conv", "ConvTranspose")


@dataclass(frozen=True)
class Recipe:
    """How MNN's quantizer is driven for one model: its activation method and the convolutions kept float (MNN op
    names: the converter names a convolution after the ONNX node's first output)."""

    method: str
    float_convolutions: tuple[str, ...] = ()

    def options(self) -> dict[str, Any]:
        """The quantizer's part of the cache key."""
        return {"feature_quantize_method": self.method, "tiny_channel_convolutions": list(self.float_convolutions)}

    def describe(self) -> str:
        if self.method == "EMA":
            return ("EMA activations (asymmetric, per tensor, convolution inputs/outputs only), MAX_ABS weights "
                    "(symmetric, per output channel), 8 bits; nothing skipped")
        return (f"KL activations (symmetric, per tensor), MAX_ABS weights (symmetric, per output channel), 8 bits; "
                f"float: {len(self.float_convolutions)} convolution(s) whose weight channels MNN would zero (scale "
                "<= 1e-6) and every non-convolution op (int8 only in convolutions; EMA ignores skip_quant_op_names)")

    def limit(self) -> str | None:
        if not self.float_convolutions:
            return None
        return (f"runtime defect: MNN zeroes weight channels with scale <= {TINY_SCALE:g}; "
                f"{len(self.float_convolutions)} layers kept float")


def choose(onnx_path: Path) -> Recipe:
    """The rule in this module's docstring, applied to the model at ``onnx_path``."""
    flagged = tiny_channel_convolutions(onnx_path)
    return Recipe("KL", tuple(flagged)) if flagged else Recipe("EMA")


def tiny_channel_convolutions(onnx_path: Path) -> list[str]:
    """MNN op names of the convolutions with a channel MNN stores as zeros although int8 could represent it."""
    graph = load_graph(onnx_path)
    constants = _constants(graph)
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    flagged = []
    for node in graph.node:
        weights = _folded_weights(node, constants, consumers.get(node.output[0], []))
        if weights is not None and _zeroes_a_live_channel(weights):
            flagged.append(node.output[0])
    return flagged


def _zeroes_a_live_channel(weights: np.ndarray) -> bool:
    """``weights``: one row per output channel. A channel MNN zeroes (scale <= TINY_SCALE) is live when it is at
    least half an int8 step of the layer's largest channel: int8 over the whole layer would keep it."""
    channel_max = np.abs(weights).max(axis=1)
    zeroed = channel_max / WEIGHT_LEVELS <= TINY_SCALE
    live = channel_max >= channel_max.max() / (2 * WEIGHT_LEVELS)
    return bool((zeroed & live & (channel_max > 0)).any())


def _folded_weights(node: onnx.NodeProto, constants: dict[str, np.ndarray],
                    consumers: list[onnx.NodeProto]) -> np.ndarray | None:
    """A Conv / ConvTranspose's weights, one row per output channel, with a BatchNormalization that alone follows
    it folded in as MNN's converter does; None for other nodes and for weights computed at run time."""
    if node.op_type not in CONV_OPS or len(node.input) < 2 or node.input[1] not in constants:
        return None
    weights = constants[node.input[1]].astype(np.float64)
    if node.op_type == "ConvTranspose":  # [C_in, C_out / group, k...] -> [C_out, C_in / group * k...]
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        c_in, c_out_g = weights.shape[:2]
        weights = weights.reshape(group, c_in // group, c_out_g, -1).transpose(0, 2, 1, 3)
        weights = weights.reshape(group * c_out_g, -1)
    rows = weights.reshape(weights.shape[0], -1)
    scale = _batchnorm_scale(consumers, constants)
    return rows if scale is None or scale.shape[0] != rows.shape[0] else rows * scale[:, None]


def _batchnorm_scale(consumers: list[onnx.NodeProto], constants: dict[str, np.ndarray]) -> np.ndarray | None:
    """gamma / sqrt(var + eps) of the BatchNormalization that is a convolution's only consumer, else None."""
    if len(consumers) != 1 or consumers[0].op_type != "BatchNormalization":
        return None
    bn = consumers[0]
    if not all(name in constants for name in bn.input[1:5]):
        return None
    gamma, _, _, var = (constants[name].astype(np.float64) for name in bn.input[1:5])
    eps = next((a.f for a in bn.attribute if a.name == "epsilon"), 1e-5)
    return gamma / np.sqrt(var + eps)


def _constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """Initializers and Constant nodes' values (paddle2onnx stores every weight as a Constant node)."""
    from onnx import numpy_helper

    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer if not t.external_data}
    for node in graph.node:
        if node.op_type == "Constant":
            value = next((a.t for a in node.attribute if a.name == "value"), None)
            if value is not None:
                values[node.output[0]] = numpy_helper.to_array(value)
    return values
