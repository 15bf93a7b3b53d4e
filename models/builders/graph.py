"""A small graph-building helper so each architecture reads like a network definition.

`Net` owns the node list, the initializers and a seeded ``np.random.RandomState``; its layer methods take
and return `Tensor` handles and emit the node patterns torch.onnx produces (Conv with folded BatchNorm or a
BatchNormalization node, Gemm heads, MatMul + Add linears, Erf-form Gelu, Clip for ReLU6 ...).

Scaling: every handle carries ``var``, an estimate of the variance of its elements for the benchmark inputs
(images as the benchmark generates them, see IMAGE_VAR; LayerNorm-ed tokens). Each weighted layer divides its
weights by ``sqrt(fan_in * var)`` so that its output has about unit variance, which is the job BatchNorm
statistics do in a trained network; without it random weights let activations vanish or explode over 50
layers. The constants below were checked against ONNX Runtime on generated images: the measured variance of
every tensor stays within 0.9x..2.4x of its estimate, pooled squeeze-excite vectors aside (down to 0.15x).

Weight matrices are standardized per output channel (zero mean, exact standard deviation; "scaled weight
standardization", Qiao et al. 2019, Brock et al. 2021): a random filter's sum would otherwise pick up a random
share of its input's mean (rectified maps are not centered), and the spread of per-channel scales that this
causes compounds with depth, most of all through convex activations like HardSwish. Zero-sum filters see
only the input's variance, which is why the estimate tracks the variance and not the mean square.

Determinism: weights are drawn with ``RandomState.random_sample`` (integer arithmetic, exact everywhere) and
transformed by elementwise, correctly rounded numpy ufuncs only. We avoid ``standard_normal`` (its polar
method calls libm ``log``, which is not correctly rounded on every platform) and numpy/BLAS reductions (their
summation order depends on the build and the CPU); the row sums of the standardization are a fixed pairwise
tree of elementwise adds. So the float32 weights, hence the serialized bytes, match on every machine.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8
BN_EPS = 1e-5

# Var[f(y)] / v for y ~ N(0, v), v near 1: how an activation scales the variance of its input. HardSwish is
# not in the table: it is convex in v (see `_hardswish_var`).
ACTIVATION_VAR = {"relu": 0.341, "relu6": 0.341, "leaky_relu": 0.376, "gelu": 0.345}
LEAKY_RELU_ALPHA = 0.1
# Image inputs are scaled for the values the benchmark generates for them: uniform(-2.5, 2.5), variance
# 25/12. Smaller inputs (normal(0, 1) images) only make activations somewhat smaller; larger ones than
# planned would grow through HardSwish and squeeze-excite stacks (MobileNetV3), which have no BatchNorm
# statistics of their own to absorb them.
IMAGE_VAR = 25 / 12
# Spatial averaging removes nearly all of a map's variance: what is left (the spread of channel means and
# the variance over 7x7..28x28 positions) measured 1.5-4% of it in our nets. It scales the layers that read
# a pooled vector (squeeze-excite, classifier), so their outputs still depend on the input.
POOLED_VAR = 0.03
# HardSigmoid as torch exports it: clip(x / 6 + 0.5, 0, 1). For a unit-variance x the gate g has
# E[g^2] = 1/4 + 1/36, and scaling a map by it scales the map's variance by about that much.
HARDSIGMOID_ALPHA = 1.0 / 6.0
GATE_MEAN_SQUARE = 0.25 + 1.0 / 36.0


@dataclass(frozen=True)
class Tensor:
    """A value in the graph under construction."""

    name: str
    channels: int  # size of the feature axis: axis 1 of NCHW maps, the last axis of token sequences
    var: float = 1.0  # estimated variance of an element, see the module docstring


def _row_sums(rows: np.ndarray) -> np.ndarray:
    """Sum of each row as a fixed pairwise tree of elementwise adds: the same bits on every machine."""
    width = 1 << max(0, rows.shape[1] - 1).bit_length()
    acc = np.zeros((rows.shape[0], width))
    acc[:, : rows.shape[1]] = rows
    while width > 1:
        width //= 2
        acc = acc[:, :width] + acc[:, width:]
    return acc[:, 0]


def _hardswish_var(v: float) -> float:
    """Var[hardswish(y)] for y ~ N(0, v), v <~ 1.5: y/2 + y^2/6 inside [-3, 3] gives v/4 + v^2/18.

    The v^2 term makes a HardSwish net unstable around its scale: a layer whose input is 10% larger than
    planned gives out ~12% more, so the MobileNetV3 builder feeds HardSwish a smaller pre-activation (gamma).
    """
    return v / 4 + v * v / 18


def _conv_attrs(k: int, stride: int, groups: int, pad: int) -> dict:
    return {
        "dilations": [1, 1],
        "group": groups,
        "kernel_shape": [k, k],
        "pads": [pad, pad, pad, pad],
        "strides": [stride, stride],
    }


class Net:
    """Collects nodes and seeded initializers; `build` returns the checked ModelProto."""

    def __init__(self, name: str, seed: int) -> None:
        self.name = name
        self.rng = np.random.RandomState(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self.estimates: dict[str, float] = {}  # tensor name -> var, for tuning the scaling (not serialized)
        self._scope: list[str] = []
        self._taken: set[str] = set()
        self._consts: dict[tuple, str] = {}

    # ----------------------------------------------------------------------------------- bookkeeping
    @contextlib.contextmanager
    def scope(self, name: str) -> Iterator[None]:
        """Prefix node and weight names, like a torch submodule path ("layer1.0")."""
        self._scope.append(name)
        try:
            yield
        finally:
            self._scope.pop()

    @contextlib.contextmanager
    def _maybe_scope(self, name: str | None) -> Iterator[None]:
        if name is None:
            yield
        else:
            with self.scope(name):
                yield

    def _unique(self, base: str) -> str:
        name, i = base, 0
        while name in self._taken:
            i += 1
            name = f"{base}_{i}"
        self._taken.add(name)
        return name

    def uniform(self, shape: int | Sequence[int], std: float) -> np.ndarray:
        """Float64 draws from U(-a, a) with standard deviation `std` (see the module docstring)."""
        unit = self.rng.random_sample(shape)
        return (2.0 * unit - 1.0) * (std * math.sqrt(3.0))

    def weight(self, out_features: int, fan_in_shape: Sequence[int], std: float) -> np.ndarray:
        """[out_features, *fan_in_shape] weights, each output row standardized to mean 0 and std `std`."""
        if math.prod(fan_in_shape) < 2:
            raise ValueError("a standardized row needs at least two weights")
        rows = self.uniform((out_features, math.prod(fan_in_shape)), 1.0)
        centered = rows - (_row_sums(rows) / rows.shape[1])[:, None]
        row_std = np.sqrt(_row_sums(centered * centered) / rows.shape[1])
        return (centered * (std / row_std)[:, None]).reshape(out_features, *fan_in_shape)

    def param(self, suffix: str, array: np.ndarray) -> str:
        """A float32 weight, named like torch's state_dict key ("layer1.0.conv1.weight")."""
        name = self._unique(".".join([*self._scope, suffix]))
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32), name))
        return name

    def const(self, values: np.ndarray | Sequence | float, dtype: type = np.int64) -> str:
        """A constant (shape, axes, scalar); equal constants are shared."""
        array = np.asarray(values, dtype=dtype)
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self._consts:
            name = self._unique(f"onnx::{len(self._consts)}")
            self.initializers.append(numpy_helper.from_array(array, name))
            self._consts[key] = name
        return self._consts[key]

    def op(self, op_type: str, inputs: Sequence[str], n_out: int = 1, **attrs) -> str | list[str]:
        """Append one node; returns its output name (or names when n_out > 1)."""
        node_name = self._unique("/" + "/".join([*self._scope, op_type]))
        outputs = [f"{node_name}_output_{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outputs, name=node_name, **attrs))
        return outputs[0] if n_out == 1 else outputs

    def tensor(self, name: str, channels: int, var: float) -> Tensor:
        self.estimates[name] = var
        return Tensor(name, channels, var)

    def input(self, name: str, shape: Sequence[int], dtype: int = TensorProto.FLOAT, var: float = 1.0) -> Tensor:
        """A graph input whose values have variance `var`; axis 0 is the symbolic "batch" dimension."""
        self.inputs.append(helper.make_tensor_value_info(name, dtype, ["batch", *shape[1:]]))
        return Tensor(name, shape[1] if len(shape) > 1 else 1, var)

    def image(self, shape: Sequence[int]) -> Tensor:
        """The "input" image batch, with the variance of the benchmark's generated images."""
        return self.input("input", shape, var=IMAGE_VAR)

    def output(self, t: Tensor | str, name: str, shape: Sequence[int], dtype: int = TensorProto.FLOAT) -> None:
        """Expose `t` as graph output `name` (renaming its producer's output, as exporters name outputs)."""
        old = t.name if isinstance(t, Tensor) else t
        for node in self.nodes:
            for field in (node.input, node.output):
                for i, value in enumerate(field):
                    if value == old:
                        field[i] = name
        self.outputs.append(helper.make_tensor_value_info(name, dtype, ["batch", *shape[1:]]))

    def build(self, doc: str) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, self.name, self.inputs, self.outputs, self.initializers)
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            producer_name="bench.models",
            producer_version="1",
            doc_string=doc,
        )
        model.ir_version = IR_VERSION
        onnx.checker.check_model(model)
        return model

    # ---------------------------------------------------------------------------------- conv layers
    def _bn_stats(self, n: int, gamma: float) -> tuple[np.ndarray, ...]:
        """BatchNorm (scale, bias, mean, var) of a unit-variance conv output; `gamma` sets the output scale."""
        scale = gamma * (1.0 + self.uniform(n, 0.05))
        bias = gamma * self.uniform(n, 0.05)
        mean = self.uniform(n, 0.05)
        var = 1.0 + self.uniform(n, 0.1)
        return scale, bias, mean, var

    def conv(
        self,
        x: Tensor,
        out_ch: int,
        k: int,
        stride: int = 1,
        groups: int = 1,
        *,
        act: str | None = None,
        bn: str | None = "fold",
        gamma: float = 1.0,
        pad: int | None = None,
        std: float = 1.0,
        bias: float = 0.0,
        name: str | None = "conv",
    ) -> Tensor:
        """Conv -> BatchNorm -> activation. `bn`: "fold" (into the conv, as torch.onnx does in eval mode),
        "node" (a BatchNormalization node) or None (a plain conv with output std `std` and a bias around
        `bias`). `gamma` is the BatchNorm output scale: below 1 to damp a residual branch, for instance."""
        fan_in = x.channels // groups * k * k
        weight = self.weight(out_ch, (x.channels // groups, k, k), std / math.sqrt(fan_in * x.var))
        attrs = _conv_attrs(k, stride, groups, k // 2 if pad is None else pad)
        with self._maybe_scope(name):
            if bn == "fold":
                scale, shift, mean, running_var = self._bn_stats(out_ch, gamma)
                scale = scale / np.sqrt(running_var + BN_EPS)
                folded_bias = shift - mean * scale
                weight = weight * scale[:, None, None, None]
                inputs = [x.name, self.param("weight", weight), self.param("bias", folded_bias)]
                y, var = self.op("Conv", inputs, **attrs), gamma**2
            elif bn == "node":
                y = self.op("Conv", [x.name, self.param("weight", weight)], **attrs)
                stats = self._bn_stats(out_ch, gamma)
                names = [
                    self.param(f"bn.{key}", v)
                    for key, v in zip(("weight", "bias", "running_mean", "running_var"), stats, strict=True)
                ]
                y, var = self.op("BatchNormalization", [y, *names], epsilon=BN_EPS, momentum=0.9), gamma**2
            else:
                conv_bias = bias + self.uniform(out_ch, 0.1 * std)
                y = self.op("Conv", [x.name, self.param("weight", weight), self.param("bias", conv_bias)], **attrs)
                var = std**2
            out = self.tensor(y, out_ch, var)
            return self.act(out, act) if act else out

    def act(self, x: Tensor, kind: str, var_gain: float | None = None) -> Tensor:
        """Activation; `var_gain` overrides the variance table where the input is not centered."""
        if kind == "relu":
            y = self.op("Relu", [x.name])
        elif kind == "relu6":  # torch exports ReLU6 as Clip with scalar min/max inputs
            y = self.op("Clip", [x.name, self.const(0.0, np.float32), self.const(6.0, np.float32)])
        elif kind == "hardswish":
            y = self.op("HardSwish", [x.name])
        elif kind == "leaky_relu":
            y = self.op("LeakyRelu", [x.name], alpha=LEAKY_RELU_ALPHA)
        elif kind == "gelu":  # exact Gelu, x * 0.5 * (1 + erf(x / sqrt(2))); opset 17 has no Gelu op
            erf = self.op("Erf", [self.op("Div", [x.name, self.const(math.sqrt(2.0), np.float32)])])
            y = self.op("Mul", [x.name, self.op("Add", [erf, self.const(1.0, np.float32)])])
            y = self.op("Mul", [y, self.const(0.5, np.float32)])
        else:
            raise ValueError(f"unknown activation {kind!r}")
        if var_gain is not None:
            var = x.var * var_gain
        elif kind == "hardswish":
            var = _hardswish_var(x.var)
        else:
            var = x.var * ACTIVATION_VAR[kind]
        return self.tensor(y, x.channels, var)

    def add(self, a: Tensor, b: Tensor) -> Tensor:
        return self.tensor(self.op("Add", [a.name, b.name]), a.channels, a.var + b.var)

    def concat(self, parts: Sequence[Tensor], axis: int = 1) -> Tensor:
        channels = sum(p.channels for p in parts)
        var = sum(p.var * p.channels for p in parts) / channels
        return self.tensor(self.op("Concat", [p.name for p in parts], axis=axis), channels, var)

    def split(self, x: Tensor, sizes: Sequence[int], axis: int = 1) -> list[Tensor]:
        names = self.op("Split", [x.name, self.const(list(sizes))], n_out=len(sizes), axis=axis)
        return [self.tensor(n, c, x.var) for n, c in zip(names, sizes, strict=True)]

    def max_pool(self, x: Tensor, k: int, stride: int, pad: int = 0, ceil: bool = False) -> Tensor:
        y = self.op(
            "MaxPool",
            [x.name],
            ceil_mode=int(ceil),
            kernel_shape=[k, k],
            pads=[pad] * 4,
            strides=[stride, stride],
        )
        return self.tensor(y, x.channels, x.var)

    def global_avg_pool(self, x: Tensor) -> Tensor:
        return self.tensor(self.op("GlobalAveragePool", [x.name]), x.channels, x.var * POOLED_VAR)

    def squeeze_excite(self, x: Tensor, squeeze_ch: int, name: str = "se") -> Tensor:
        """MobileNetV3 SE: avgpool -> 1x1 conv -> ReLU -> 1x1 conv -> HardSigmoid -> scale x."""
        with self.scope(name):
            s = self.global_avg_pool(x)
            s = self.conv(s, squeeze_ch, 1, bn=None, act="relu", name="fc1")
            s = self.conv(s, x.channels, 1, bn=None, name="fc2")
            gate = self.op("HardSigmoid", [s.name], alpha=HARDSIGMOID_ALPHA, beta=0.5)
            return self.tensor(self.op("Mul", [x.name, gate]), x.channels, x.var * GATE_MEAN_SQUARE)

    def gemm(self, x: Tensor, out_features: int, std: float = 1.0, name: str = "fc") -> Tensor:
        """nn.Linear on a [batch, features] matrix, exported as Gemm(transB=1) with weight [out, in]."""
        with self.scope(name):
            weight = self.weight(out_features, (x.channels,), std / math.sqrt(x.channels * x.var))
            bias = self.uniform(out_features, 0.1 * std)
            y = self.op(
                "Gemm",
                [x.name, self.param("weight", weight), self.param("bias", bias)],
                alpha=1.0,
                beta=1.0,
                transB=1,
            )
            return self.tensor(y, out_features, std**2)

    def classifier(self, x: Tensor, classes: int = 1000, std: float = 1.0) -> Tensor:
        """torchvision's head: adaptive avgpool -> flatten -> Linear, giving `classes` logits."""
        pooled = self.global_avg_pool(x)
        flat = self.tensor(self.op("Flatten", [pooled.name], axis=1), pooled.channels, pooled.var)
        return self.gemm(flat, classes, std=std)

    # ------------------------------------------------------------------------------ sequence layers
    def linear(self, x: Tensor, out_features: int, std: float | np.ndarray = 1.0, name: str = "linear") -> Tensor:
        """nn.Linear on [batch, seq, features], exported as MatMul with weight [in, out] then Add bias.
        `std` is the output std, a scalar or one per output feature (a fused qkv projection)."""
        with self.scope(name):
            # standardized per output feature, stored [in, out] as MatMul wants it
            weight = self.weight(out_features, (x.channels,), std / math.sqrt(x.channels * x.var)).T
            bias = self.uniform(out_features, 0.1 * std)
            y = self.op("MatMul", [x.name, self.param("weight", weight)])
            var = float(np.max(std)) ** 2  # a bound; only the scalar case is read on
            return self.tensor(self.op("Add", [y, self.param("bias", bias)]), out_features, var)

    def layer_norm(self, x: Tensor, eps: float, name: str = "norm") -> Tensor:
        with self.scope(name):
            scale = 1.0 + self.uniform(x.channels, 0.05)
            bias = self.uniform(x.channels, 0.05)
            inputs = [x.name, self.param("weight", scale), self.param("bias", bias)]
            return self.tensor(self.op("LayerNormalization", inputs, axis=-1, epsilon=eps), x.channels, 1.0)
