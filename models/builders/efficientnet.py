"""EfficientNet-Lite0 (Tan & Le 2019; the Lite variants of the TensorFlow TPU repository: no
squeeze-excite, ReLU6 instead of swish, stem and head not scaled), laid out like a torch.onnx export of
timm's efficientnet_lite0 (symmetric padding, BatchNorm folded)."""

from __future__ import annotations

import onnx

from .graph import Net, Tensor

IMAGE = [1, 3, 224, 224]
CLASSES = 1000
RESIDUAL_GAMMA = 0.5  # damps the last BN of residual blocks so the skip path keeps its scale
# (expansion, kernel, first stride, output channels, repeats): EfficientNet-B0's stages
STAGES = [
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
]


def _mbconv(net: Net, x: Tensor, expand: int, k: int, stride: int, out_ch: int) -> Tensor:
    residual = stride == 1 and x.channels == out_ch
    h = x
    if expand != 1:
        h = net.conv(h, x.channels * expand, 1, act="relu6", name="conv_pw")
    h = net.conv(h, h.channels, k, stride, groups=h.channels, act="relu6", name="conv_dw")
    h = net.conv(h, out_ch, 1, gamma=RESIDUAL_GAMMA if residual else 1.0, name="conv_pwl")
    return net.add(x, h) if residual else h


def build_efficientnet_lite0() -> onnx.ModelProto:
    """EfficientNet-Lite0 at 224x224: 4.7M parameters, 0.4 GMACs."""
    net = Net("efficientnet_lite0", seed=50)
    x = net.conv(net.image(IMAGE), 32, 3, 2, act="relu6", name="conv_stem")
    for stage, (expand, k, stride, out_ch, repeats) in enumerate(STAGES):
        for i in range(repeats):
            with net.scope(f"blocks.{stage}.{i}"):
                x = _mbconv(net, x, expand, k, stride if i == 0 else 1, out_ch)
    x = net.conv(x, 1280, 1, act="relu6", name="conv_head")
    net.output(net.classifier(x, CLASSES), "logits", [1, CLASSES])
    return net.build("EfficientNet-Lite0, 224x224 input, seeded random weights (bench.models)")
