"""ShuffleNetV2 1.0x (Ma et al. 2018), laid out like torchvision's shufflenet_v2_x1_0 exported with torch.onnx:
channel split as Split, channel shuffle as Reshape -> Transpose -> Reshape, BatchNorm folded."""

from __future__ import annotations

import onnx

from .graph import POOLED_VAR, Net, Tensor

IMAGE = [1, 3, 224, 224]
CLASSES = 1000
STAGE_REPEATS = (4, 8, 4)
STAGE_CHANNELS = (24, 116, 232, 464, 1024)


def _channel_shuffle(net: Net, x: Tensor, size: int, groups: int = 2) -> Tensor:
    """[b, c, h, w] -> [b, g, c/g, h, w] -> swap the group axes -> [b, c, h, w]; batch copied with 0."""
    grouped = net.op("Reshape", [x.name, net.const([0, groups, x.channels // groups, size, size])])
    swapped = net.op("Transpose", [grouped], perm=[0, 2, 1, 3, 4])
    return net.tensor(net.op("Reshape", [swapped, net.const([0, x.channels, size, size])]), x.channels, x.var)


def _branch(net: Net, x: Tensor, out_ch: int, stride: int) -> Tensor:
    h = net.conv(x, out_ch, 1, act="relu", name="branch2.0")
    h = net.conv(h, out_ch, 3, stride, groups=out_ch, name="branch2.3")
    return net.conv(h, out_ch, 1, act="relu", name="branch2.5")


def _unit(net: Net, x: Tensor, out_ch: int, stride: int, size: int) -> Tensor:
    """One InvertedResidual; `size` is the output's spatial size, needed by the shuffle's Reshape."""
    half = out_ch // 2
    if stride == 1:
        kept, x2 = net.split(x, [half, half])
        out = net.concat([kept, _branch(net, x2, half, 1)])
    else:
        left = net.conv(x, x.channels, 3, stride, groups=x.channels, name="branch1.0")
        left = net.conv(left, half, 1, act="relu", name="branch1.2")
        out = net.concat([left, _branch(net, x, half, stride)])
    return _channel_shuffle(net, out, size)


def build_shufflenet_v2_x1_0() -> onnx.ModelProto:
    """ShuffleNetV2 1.0x at 224x224: 2.3M parameters, 0.15 GMACs."""
    net = Net("shufflenet_v2_x1_0", seed=30)
    x = net.conv(net.image(IMAGE), STAGE_CHANNELS[0], 3, 2, act="relu", name="conv1")
    x, size = net.max_pool(x, 3, 2, pad=1), 56
    for stage, (repeats, out_ch) in enumerate(zip(STAGE_REPEATS, STAGE_CHANNELS[1:4], strict=True), start=2):
        size //= 2
        for i in range(repeats):
            with net.scope(f"stage{stage}.{i}"):
                x = _unit(net, x, out_ch, 2 if i == 0 else 1, size)
    x = net.conv(x, STAGE_CHANNELS[4], 1, act="relu", name="conv5")
    # torchvision pools with x.mean([2, 3]), which exports as ReduceMean, not GlobalAveragePool
    pooled = net.tensor(net.op("ReduceMean", [x.name], axes=[2, 3], keepdims=0), x.channels, x.var * POOLED_VAR)
    net.output(net.gemm(pooled, CLASSES), "logits", [1, CLASSES])
    return net.build("ShuffleNetV2 1.0x, 224x224 input, seeded random weights (bench.models)")
