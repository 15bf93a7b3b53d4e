"""Make onnx2torch's GraphModule exportable: constant shape tensors become Python values.

onnx2torch keeps ONNX's shape-like inputs as tensors (a Reshape's target shape, a Split's sizes), read with
``.tolist()`` inside ``forward``. Eager PyTorch does not mind; ``torch.export`` traces with fake tensors, so those
values are unknown to it and export stops at "Could not guard on data-dependent expression" (ShuffleNet, MiniLM,
the SSD-style det_320, PP-OCRv4 det's Resize scales). Where such inputs are constants of the module (ONNX
initializers), this pass swaps the module for one holding their values as Python lists. Nothing else changes:
the same torch ops, the same numbers.
"""

from __future__ import annotations

from collections import Counter

import torch
from onnx2torch.node_converters.reshape import OnnxReshape
from onnx2torch.node_converters.resize import OnnxResize
from onnx2torch.node_converters.split import OnnxSplit, OnnxSplit13
from torch import fx, nn


class StaticReshape(nn.Module):
    """ONNX Reshape with its target shape known (0 copies the input's dimension, as ONNX says)."""

    def __init__(self, shape: list[int]) -> None:
        super().__init__()
        self.shape = shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.reshape(x, [x.shape[i] if size == 0 else size for i, size in enumerate(self.shape)])


class Known:
    """A constant tensor's values, for onnx2torch code that reads a tensor only with ``nelement()`` and
    ``tolist()`` (Resize's roi, scales and sizes)."""

    def __init__(self, tensor: torch.Tensor) -> None:
        self.values, self.count = tensor.tolist(), tensor.numel()

    def nelement(self) -> int:
        return self.count

    def tolist(self) -> list:
        return self.values


class StaticResize(nn.Module):
    """onnx2torch's Resize module called with its constant inputs as :class:`Known` values."""

    def __init__(self, resize: nn.Module, constants: list[Known | None]) -> None:
        super().__init__()
        self.resize, self.constants = resize, constants

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.resize(x, *self.constants)


def _static_reshape(module: nn.Module, values: list[torch.Tensor | None]) -> nn.Module | None:
    return StaticReshape([int(v) for v in values[0].tolist()]) if values[0] is not None else None


def _static_split(module: nn.Module, values: list[torch.Tensor | None]) -> nn.Module | None:
    if values[0] is None:
        return None
    return OnnxSplit(num_splits=module.num_splits, axis=module.axis, split=[int(v) for v in values[0].tolist()])


def _static_resize(module: nn.Module, values: list[torch.Tensor | None]) -> nn.Module | None:
    return StaticResize(module, [None if v is None else Known(v) for v in values])


# onnx2torch module -> a maker of the equivalent module from (the module, its constant inputs after the first)
STATIC_EQUIVALENTS = {OnnxReshape: _static_reshape, OnnxSplit13: _static_split, OnnxResize: _static_resize}
MISSING = object()


def _constant(gm: fx.GraphModule, arg: object) -> object:
    """The tensor a get_attr argument holds, None for an absent optional input, MISSING for a computed one."""
    if arg is None:
        return None
    if isinstance(arg, fx.Node) and arg.op == "get_attr":
        value = _fetch(gm, arg.target)
        return value if isinstance(value, torch.Tensor) else MISSING
    return MISSING


def _fetch(gm: fx.GraphModule, target: str) -> object:
    obj: object = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def bake_constant_shapes(gm: fx.GraphModule) -> dict[str, int]:
    """Rewrite ``gm`` in place; returns how many modules of each onnx2torch kind were made static."""
    baked: Counter[str] = Counter()
    read: set[str] = set()
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or len(node.args) < 2 or node.kwargs:
            continue
        module = gm.get_submodule(node.target)
        make = STATIC_EQUIVALENTS.get(type(module))
        values = [_constant(gm, arg) for arg in node.args[1:]]
        if make is None or any(v is MISSING for v in values):
            continue
        static = make(module, values)
        if static is None:
            continue
        name = f"{node.target}_static"
        gm.add_submodule(name, static)
        with gm.graph.inserting_after(node):
            replacement = gm.graph.call_module(name, (node.args[0],))
        read |= {arg.target for arg in node.args[1:] if isinstance(arg, fx.Node)}  # erase_node clears args
        node.replace_all_uses_with(replacement)
        gm.graph.erase_node(node)
        baked[type(module).__name__] += 1
    gm.graph.eliminate_dead_code()
    _drop_unread(gm, read)
    gm.delete_all_unused_submodules()
    gm.recompile()
    return dict(sorted(baked.items()))


def _drop_unread(gm: fx.GraphModule, targets: set[str]) -> None:
    """Delete the constants that only the replaced modules read: torch.export lifts every buffer, even an unread
    one, and ExecuTorch refuses an empty one (Resize's absent roi is a 0-element tensor: "0 in strides")."""
    still = {n.target for n in gm.graph.nodes if n.op == "get_attr"}
    for target in targets - still:
        owner, _, leaf = target.rpartition(".")
        holder = gm.get_submodule(owner) if owner else gm
        holder._buffers.pop(leaf, None)
        holder._parameters.pop(leaf, None)
