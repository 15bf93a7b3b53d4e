"""ResNet-18 and ResNet-50 (He et al. 2016), laid out like torchvision's models (v1.5: the stride of a
bottleneck sits on its 3x3 conv). ResNet-18 keeps BatchNormalization nodes, as torch.onnx emits them in
training-mode export or with constant folding off; ResNet-50 has them folded into the convs."""

from __future__ import annotations

import onnx

from .graph import Net, Tensor

IMAGE = [1, 3, 224, 224]
CLASSES = 1000
WIDTHS = (64, 128, 256, 512)
# Scale of the last BN of each residual branch: adds a quarter of the skip path's variance per block
# instead of doubling it (as zero-init-residual training starts with 0).
RESIDUAL_GAMMA = 0.5
# The ReLU after an identity-skip add sees a non-negative skip plus a small centered branch, so it keeps
# 0.61..0.72 of the variance (measured) rather than the third it keeps of a centered input; the top of
# that range errs on the side of shrinking, not growing, activations.
IDENTITY_RELU_VAR_GAIN = 0.72


def _merge(net: Net, branch: Tensor, x: Tensor, stride: int, bn: str) -> Tensor:
    """relu(branch + shortcut(x)), the shortcut being x itself or a strided 1x1 conv."""
    if stride == 1 and x.channels == branch.channels:
        return net.act(net.add(branch, x), "relu", var_gain=IDENTITY_RELU_VAR_GAIN)
    shortcut = net.conv(x, branch.channels, 1, stride, bn=bn, name="downsample")
    return net.act(net.add(branch, shortcut), "relu")


def _basic_block(net: Net, x: Tensor, width: int, stride: int, bn: str) -> Tensor:
    h = net.conv(x, width, 3, stride, act="relu", bn=bn, name="conv1")
    h = net.conv(h, width, 3, bn=bn, gamma=RESIDUAL_GAMMA, name="conv2")
    return _merge(net, h, x, stride, bn)


def _bottleneck(net: Net, x: Tensor, width: int, stride: int, bn: str) -> Tensor:
    h = net.conv(x, width, 1, act="relu", bn=bn, name="conv1")
    h = net.conv(h, width, 3, stride, act="relu", bn=bn, name="conv2")
    h = net.conv(h, 4 * width, 1, bn=bn, gamma=RESIDUAL_GAMMA, name="conv3")
    return _merge(net, h, x, stride, bn)


def _resnet(name: str, seed: int, block, depths: tuple[int, ...], bn: str) -> Net:
    net = Net(name, seed)
    x = net.conv(net.image(IMAGE), 64, 7, 2, act="relu", bn=bn, name="conv1")
    x = net.max_pool(x, 3, 2, pad=1)
    for stage, (width, depth) in enumerate(zip(WIDTHS, depths, strict=True), start=1):
        for i in range(depth):
            with net.scope(f"layer{stage}.{i}"):
                x = block(net, x, width, 2 if i == 0 and stage > 1 else 1, bn)
    net.output(net.classifier(x, CLASSES), "logits", [1, CLASSES])
    return net


def build_resnet18() -> onnx.ModelProto:
    """ResNet-18 at 224x224: 11.7M parameters, 1.8 GMACs; BatchNormalization nodes kept."""
    net = _resnet("resnet18", 60, _basic_block, (2, 2, 2, 2), bn="node")
    return net.build("ResNet-18, 224x224 input, seeded random weights (bench.models)")


def build_resnet50() -> onnx.ModelProto:
    """ResNet-50 v1.5 at 224x224: 25.6M parameters, 4.1 GMACs; BatchNorm folded into the convs."""
    net = _resnet("resnet50", 61, _bottleneck, (3, 4, 6, 3), bn="fold")
    return net.build("ResNet-50 v1.5, 224x224 input, seeded random weights (bench.models)")
