"""SqueezeNet 1.1 (Iandola et al. 2016; v1.1 from the authors' repository), laid out like torchvision's
squeezenet1_1: no BatchNorm, convs with bias, ceil-mode max pools, a conv classifier averaged to logits."""

from __future__ import annotations

import onnx

from .graph import Net, Tensor

IMAGE = [1, 3, 224, 224]
CLASSES = 1000
# (squeeze, expand) channels of each Fire module; None marks a 3x3 stride 2 ceil-mode max pool
FEATURES = [
    None,
    (16, 64),
    (16, 64),
    None,
    (32, 128),
    (32, 128),
    None,
    (48, 192),
    (48, 192),
    (64, 256),
    (64, 256),
]


def _fire(net: Net, x: Tensor, squeeze: int, expand: int) -> Tensor:
    s = net.conv(x, squeeze, 1, bn=None, act="relu", name="squeeze")
    e1 = net.conv(s, expand, 1, bn=None, act="relu", name="expand1x1")
    e3 = net.conv(s, expand, 3, bn=None, act="relu", name="expand3x3")
    return net.concat([e1, e3])


def build_squeezenet1_1() -> onnx.ModelProto:
    """SqueezeNet 1.1 at 224x224: 1.2M parameters, 0.35 GMACs."""
    net = Net("squeezenet1_1", seed=40)
    x = net.conv(net.image(IMAGE), 64, 3, 2, pad=0, bn=None, act="relu", name="features.0")
    for index, fire in enumerate(FEATURES, start=2):
        if fire is None:
            x = net.max_pool(x, 3, 2, ceil=True)
        else:
            with net.scope(f"features.{index}"):
                x = _fire(net, x, *fire)
    # the classifier conv is followed by a ReLU and averaged over 13x13 positions: a wide pre-activation
    # (std 5) keeps the non-negative logits spread over a range like a trained net's
    x = net.conv(x, CLASSES, 1, bn=None, act="relu", std=5.0, name="classifier.1")
    pooled = net.global_avg_pool(x)
    logits = net.tensor(net.op("Flatten", [pooled.name], axis=1), CLASSES, pooled.var)
    net.output(logits, "logits", [1, CLASSES])
    return net.build("SqueezeNet 1.1, 224x224 input, seeded random weights (bench.models)")
