"""MobileNetV2 and MobileNetV3 (small, large), laid out like torchvision's models exported with torch.onnx
(BatchNorm folded into the convs, ReLU6 as Clip, HardSwish / HardSigmoid nodes, Gemm classifier)."""

from __future__ import annotations

import onnx

from .graph import Net, Tensor

IMAGE = [1, 3, 224, 224]
CLASSES = 1000
RESIDUAL_GAMMA = 0.5  # damps the last BN of residual blocks so the skip path keeps its scale
# BN scale in front of HardSwish: a smaller pre-activation keeps HardSwish nearer its linear part, which
# tames the growth of scale errors through the deep HardSwish stack (see graph._hardswish_var).
HARDSWISH_GAMMA = 0.45


def _gamma(act: str) -> float:
    return HARDSWISH_GAMMA if act == "hardswish" else 1.0


def _make_divisible(value: float, divisor: int = 8) -> int:
    """torchvision's channel rounding: nearest multiple of `divisor`, never more than 10% below `value`."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _inverted_residual_v2(net: Net, x: Tensor, expand: int, out_ch: int, stride: int) -> Tensor:
    residual = stride == 1 and x.channels == out_ch
    h = x
    if expand != 1:
        h = net.conv(h, x.channels * expand, 1, act="relu6", name="expand")
    h = net.conv(h, h.channels, 3, stride, groups=h.channels, act="relu6", name="depthwise")
    h = net.conv(h, out_ch, 1, gamma=RESIDUAL_GAMMA if residual else 1.0, name="project")
    return net.add(x, h) if residual else h


def build_mobilenet_v2() -> onnx.ModelProto:
    """MobileNetV2 1.0 at 224x224 (Sandler et al. 2018): 3.5M parameters, 0.30 GMACs."""
    net = Net("mobilenet_v2", seed=20)
    x = net.conv(net.image(IMAGE), 32, 3, 2, act="relu6", name="features.0")
    # (expansion t, output channels c, repeats n, first stride s), from the paper's Table 2
    stages = [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ]
    index = 1
    for expand, out_ch, repeats, stride in stages:
        for i in range(repeats):
            with net.scope(f"features.{index}"):
                x = _inverted_residual_v2(net, x, expand, out_ch, stride if i == 0 else 1)
            index += 1
    x = net.conv(x, 1280, 1, act="relu6", name=f"features.{index}")
    net.output(net.classifier(x, CLASSES), "logits", [1, CLASSES])
    return net.build("MobileNetV2 1.0, 224x224 input, seeded random weights (bench.models)")


# (kernel, expanded channels, output channels, squeeze-excite, activation, stride), torchvision's tables
V3_LARGE = [
    (3, 16, 16, False, "relu", 1),
    (3, 64, 24, False, "relu", 2),
    (3, 72, 24, False, "relu", 1),
    (5, 72, 40, True, "relu", 2),
    (5, 120, 40, True, "relu", 1),
    (5, 120, 40, True, "relu", 1),
    (3, 240, 80, False, "hardswish", 2),
    (3, 200, 80, False, "hardswish", 1),
    (3, 184, 80, False, "hardswish", 1),
    (3, 184, 80, False, "hardswish", 1),
    (3, 480, 112, True, "hardswish", 1),
    (3, 672, 112, True, "hardswish", 1),
    (5, 672, 160, True, "hardswish", 2),
    (5, 960, 160, True, "hardswish", 1),
    (5, 960, 160, True, "hardswish", 1),
]
V3_SMALL = [
    (3, 16, 16, True, "relu", 2),
    (3, 72, 24, False, "relu", 2),
    (3, 88, 24, False, "relu", 1),
    (5, 96, 40, True, "hardswish", 2),
    (5, 240, 40, True, "hardswish", 1),
    (5, 240, 40, True, "hardswish", 1),
    (5, 120, 48, True, "hardswish", 1),
    (5, 144, 48, True, "hardswish", 1),
    (5, 288, 96, True, "hardswish", 2),
    (5, 576, 96, True, "hardswish", 1),
    (5, 576, 96, True, "hardswish", 1),
]


def _inverted_residual_v3(
    net: Net, x: Tensor, k: int, expanded: int, out_ch: int, se: bool, act: str, stride: int
) -> Tensor:
    residual = stride == 1 and x.channels == out_ch
    h = x
    if expanded != x.channels:
        h = net.conv(h, expanded, 1, act=act, gamma=_gamma(act), name="expand")
    h = net.conv(h, expanded, k, stride, groups=expanded, act=act, gamma=_gamma(act), name="depthwise")
    if se:
        h = net.squeeze_excite(h, _make_divisible(expanded // 4))
    h = net.conv(h, out_ch, 1, gamma=RESIDUAL_GAMMA if residual else 1.0, name="project")
    return net.add(x, h) if residual else h


def _mobilenet_v3(name: str, seed: int, blocks: list[tuple], last_channel: int) -> Net:
    net = Net(name, seed)
    x = net.conv(net.image(IMAGE), 16, 3, 2, act="hardswish", gamma=HARDSWISH_GAMMA, name="features.0")
    for index, block in enumerate(blocks, start=1):
        with net.scope(f"features.{index}"):
            x = _inverted_residual_v3(net, x, *block)
    x = net.conv(x, 6 * x.channels, 1, act="hardswish", gamma=HARDSWISH_GAMMA, name=f"features.{len(blocks) + 1}")
    pooled = net.global_avg_pool(x)
    flat = net.tensor(net.op("Flatten", [pooled.name], axis=1), pooled.channels, pooled.var)
    hidden = net.act(net.gemm(flat, last_channel, name="classifier.0"), "hardswish")
    net.output(net.gemm(hidden, CLASSES, name="classifier.3"), "logits", [1, CLASSES])
    return net


def build_mobilenet_v3_small() -> onnx.ModelProto:
    """MobileNetV3-Small 1.0 (Howard et al. 2019): 2.5M parameters, 0.06 GMACs."""
    net = _mobilenet_v3("mobilenet_v3_small", 21, V3_SMALL, 1024)
    return net.build("MobileNetV3-Small 1.0, 224x224 input, seeded random weights (bench.models)")


def build_mobilenet_v3_large() -> onnx.ModelProto:
    """MobileNetV3-Large 1.0 (Howard et al. 2019): 5.5M parameters, 0.22 GMACs."""
    net = _mobilenet_v3("mobilenet_v3_large", 22, V3_LARGE, 1280)
    return net.build("MobileNetV3-Large 1.0, 224x224 input, seeded random weights (bench.models)")
