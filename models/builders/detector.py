"""det_320: a single-stage, anchor-point detector in the YOLOv8 / NanoDet style, at 320x320.

Backbone: stride-2 3x3 convs and CSP blocks (1x1 conv, Split in halves, residual 3x3 pairs, Concat,
1x1 conv), giving P3/P4/P5 at strides 8/16/32. Neck: PAN, top-down with nearest 2x Resize + Concat, then
bottom-up with strided convs + Concat. Head: decoupled box and class branches per level; one anchor point
per cell (40*40 + 20*20 + 10*10 = 2100 in all).

Outputs:
  boxes  [batch, 2100, 4]: x1, y1, x2, y2 in input pixels, decoded in the graph as
         cell centre -/+ exp(raw distance) * stride (FCOS-style left/top/right/bottom distances)
  scores [batch, 2100, 80]: per-class sigmoid scores (COCO's 80 classes), before any NMS

BatchNormalization nodes are kept (as a training-mode or non-folded export leaves them) and the activation
is LeakyReLU(0.1), as in NanoDet and YOLOv4-tiny.
"""

from __future__ import annotations

import numpy as np
import onnx

from .graph import Net, Tensor

SIZE = 320
IMAGE = [1, 3, SIZE, SIZE]
CLASSES = 80
STRIDES = (8, 16, 32)
HEAD_CH = 64
ACT = "leaky_relu"
RESIDUAL_GAMMA = 0.5  # damps the last BN of each residual pair so the skip path keeps its scale
CLASS_PRIOR_BIAS = -4.6  # log(0.01 / 0.99): scores start near 1%, as RetinaNet/YOLO initialise them
BOX_STD = 0.5  # raw log-distance spread: exp() of it spans about 0.4x..2.7x the stride


def _conv(net: Net, x: Tensor, out_ch: int, k: int = 1, stride: int = 1, name: str = "conv") -> Tensor:
    return net.conv(x, out_ch, k, stride, act=ACT, bn="node", name=name)


def _csp(net: Net, x: Tensor, out_ch: int, pairs: int) -> Tensor:
    """C2f-style CSP block: split, stack residual 3x3 pairs on one half, concat everything, fuse."""
    h = _conv(net, x, out_ch, name="cv1")
    parts = net.split(h, [out_ch // 2, out_ch // 2])
    for i in range(pairs):
        with net.scope(f"m.{i}"):
            y = _conv(net, parts[-1], out_ch // 2, 3, name="cv1")
            y = net.conv(y, out_ch // 2, 3, act=ACT, bn="node", gamma=RESIDUAL_GAMMA, name="cv2")
            parts.append(net.add(parts[-1], y))
    return _conv(net, net.concat(parts), out_ch, name="cv2")


def _upsample(net: Net, x: Tensor) -> Tensor:
    """Nearest 2x Resize, with the attributes torch.onnx gives nn.Upsample(scale_factor=2)."""
    scales = net.const([1.0, 1.0, 2.0, 2.0], np.float32)
    y = net.op(
        "Resize",
        [x.name, "", scales],
        coordinate_transformation_mode="asymmetric",
        cubic_coeff_a=-0.75,
        mode="nearest",
        nearest_mode="floor",
    )
    return net.tensor(y, x.channels, x.var)


def _backbone(net: Net, image: Tensor) -> list[Tensor]:
    x = _conv(net, image, 16, 3, 2, name="backbone.stem")
    features = []
    for stage, (out_ch, pairs) in enumerate([(32, 1), (64, 2), (128, 2), (256, 1)], start=1):
        with net.scope(f"backbone.stage{stage}"):
            x = _csp(net, _conv(net, x, out_ch, 3, 2, name="down"), out_ch, pairs)
        features.append(x)
    return features[1:]  # P3, P4, P5


def _neck(net: Net, p3: Tensor, p4: Tensor, p5: Tensor) -> list[Tensor]:
    with net.scope("neck"):
        lat5 = _conv(net, p5, 128, name="lateral5")
        with net.scope("top_down4"):
            top4 = _csp(net, net.concat([_upsample(net, lat5), p4]), 128, 1)
        lat4 = _conv(net, top4, 64, name="lateral4")
        with net.scope("top_down3"):
            out3 = _csp(net, net.concat([_upsample(net, lat4), p3]), 64, 1)
        with net.scope("bottom_up4"):
            out4 = _csp(net, net.concat([_conv(net, out3, 64, 3, 2, name="down"), lat4]), 128, 1)
        with net.scope("bottom_up5"):
            out5 = _csp(net, net.concat([_conv(net, out4, 128, 3, 2, name="down"), lat5]), 256, 1)
    return [out3, out4, out5]


def _head(net: Net, x: Tensor, level: int) -> str:
    """Decoupled head of one level: [batch, 4 + CLASSES, cells] raw box distances and class logits."""
    with net.scope(f"head.{level}"):
        box = _conv(net, _conv(net, x, HEAD_CH, 3, name="box.0"), HEAD_CH, 3, name="box.1")
        box = net.conv(box, 4, 1, bn=None, std=BOX_STD, name="box.pred")
        cls = _conv(net, _conv(net, x, HEAD_CH, 3, name="cls.0"), HEAD_CH, 3, name="cls.1")
        cls = net.conv(cls, CLASSES, 1, bn=None, bias=CLASS_PRIOR_BIAS, name="cls.pred")
        both = net.concat([box, cls])
        return net.op("Reshape", [both.name, net.const([0, 4 + CLASSES, -1])])


def _anchor_points() -> tuple[np.ndarray, np.ndarray]:
    """Per anchor point, [cx, cy, cx, cy] in pixels and [-s, -s, s, s]: boxes = centres + exp(raw) * that."""
    centres, scales = [], []
    for stride in STRIDES:
        cells = SIZE // stride
        ys, xs = np.meshgrid(np.arange(cells), np.arange(cells), indexing="ij")
        cx, cy = (xs.reshape(-1) + 0.5) * stride, (ys.reshape(-1) + 0.5) * stride
        centres.append(np.stack([cx, cy, cx, cy], axis=1))
        scales.append(np.tile(np.array([-stride, -stride, stride, stride], dtype=np.float64), (cells * cells, 1)))
    return np.concatenate(centres), np.concatenate(scales)


def build_det_320() -> onnx.ModelProto:
    """YOLO/NanoDet-style detector at 320x320 with 80 classes and 2100 anchor points."""
    net = Net("det_320", seed=70)
    levels = _neck(net, *_backbone(net, net.image(IMAGE)))
    per_level = [_head(net, x, i) for i, x in enumerate(levels)]
    preds = net.op("Transpose", [net.op("Concat", per_level, axis=2)], perm=[0, 2, 1])
    raw_box, cls = net.op("Split", [preds, net.const([4, CLASSES])], n_out=2, axis=2)
    centres, scales = _anchor_points()
    with net.scope("decode"):
        distances = net.op("Mul", [net.op("Exp", [raw_box]), net.param("anchor_scales", scales)])
        boxes = net.op("Add", [distances, net.param("anchor_centres", centres)])
    anchors = len(centres)
    net.output(boxes, "boxes", [1, anchors, 4])
    net.output(net.op("Sigmoid", [cls]), "scores", [1, anchors, CLASSES])
    return net.build("YOLO/NanoDet-style detector, 320x320 input, 80 classes, seeded random weights (bench.models)")
