"""OpenVINO int8's recipe: which of NNCF's quantization schemes a model gets, by a rule read from the ONNX graph.

NNCF documents one special scheme, ``model_type=nncf.ModelType.TRANSFORMER``, "to preserve accuracy after
quantization of Transformer models (BERT, DistilBERT, etc.)"; with it NNCF's own default preset becomes MIXED, it
applies SmoothQuant to MatMuls and leaves element-wise ops, normalizations and Softmax in float. Without it, NNCF's
quantizer propagation fails outright on BERT-shaped graphs (MiniLM: ``KeyError: '/embeddings/Gather_1'``: a Gather
of constants, the token-type embedding, reached through an Add it cannot place a quantizer across).

The rule (stated on every int8 row, never tuned on evaluation data): a graph is a transformer when it computes
attention, that is a Softmax whose input is a MatMul (or Einsum) of two computed tensors (queries x keys, neither a
weight), reached directly or through the element-wise and layout ops an export puts between them (scale, mask,
head reshapes), or when it holds a fused attention op. Convolutional, recurrent and MLP graphs keep NNCF's default.

Imports onnx only (through ``bench.execution.graph``), never openvino or nncf: the runner keys its cache with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bench.execution.graph import load_graph

if TYPE_CHECKING:
    import onnx

TRANSFORMER_RULE = ("the graph has attention: a Softmax over a MatMul of two activations (queries x keys), directly "
                    "or through element-wise/layout ops, or a fused attention op")
# What an export puts between the scores' MatMul and the Softmax: scaling, the additive mask, head reshapes.
BETWEEN_SCORES_AND_SOFTMAX = {"Add", "Sub", "Mul", "Div", "Where", "Cast", "Reshape", "Transpose", "Squeeze",
                              "Unsqueeze", "Max", "Min", "Clip"}
SCORE_OPS = {"MatMul", "Einsum"}
FUSED_ATTENTION_OPS = {"Attention", "MultiHeadAttention", "GroupQueryAttention"}  # ONNX opset 23, com.microsoft
MAX_STEPS = 6  # ops walked back from a Softmax: a mask and a scale take 2-3


@dataclass(frozen=True)
class NncfRecipe:
    """The arguments bench gives ``nncf.quantize`` beyond the data (names of NNCF enum members), and why."""

    model_type: str | None  # nncf.ModelType member, None: NNCF's default (no special patterns)
    preset: str  # nncf.QuantizationPreset member: NNCF's own default for that model type, passed explicitly
    why: str

    def describe(self, samples: int) -> str:
        """The row's ``quant_recipe``: method, granularity, what stays float and why."""
        if self.model_type == "TRANSFORMER":
            scheme = (f"model_type TRANSFORMER ({self.why}), preset MIXED: weights int8 symmetric per channel, "
                      "activations asymmetric per tensor, SmoothQuant 0.95 on MatMuls; element-wise ops, norms and "
                      "Softmax float (NNCF's transformer scheme)")
        else:
            scheme = (f"model_type default ({self.why}), preset PERFORMANCE: weights int8 symmetric per channel, "
                      "activations symmetric per tensor")
        return f"NNCF PTQ, {scheme}; {samples} calibration samples, fast bias correction; nothing skipped by bench"


def recipe_for(onnx_path: Path) -> NncfRecipe:
    """NNCF's transformer scheme for a graph with attention (see the module docstring), its default otherwise."""
    graph = load_graph(onnx_path)
    if has_attention(graph):
        return NncfRecipe("TRANSFORMER", "MIXED", "attention: Softmax over a MatMul of two activations")
    return NncfRecipe(None, "PERFORMANCE", "no attention in the graph")


def has_attention(graph: onnx.GraphProto) -> bool:
    if any(node.op_type in FUSED_ATTENTION_OPS for node in graph.node):
        return True
    constant = _constant_tensors(graph)
    producer = {out: node for node in graph.node for out in node.output}
    return any(_scores_behind(node.input[0], producer, constant) for node in graph.node
               if node.op_type == "Softmax" and node.input)


def _constant_tensors(graph: onnx.GraphProto) -> set[str]:
    """Initializers, Constant outputs and whatever is computed from those alone (ONNX lists nodes in topological
    order, so one pass sees every input before its consumer)."""
    constant = {t.name for t in graph.initializer}
    for node in graph.node:
        inputs = [name for name in node.input if name]
        if node.op_type == "Constant" or (inputs and all(name in constant for name in inputs)):
            constant.update(node.output)
    return constant


def _scores_behind(tensor: str, producer: dict[str, onnx.NodeProto], constant: set[str]) -> bool:
    """Whether ``tensor`` is, within MAX_STEPS ops of the kinds in BETWEEN_SCORES_AND_SOFTMAX, the product of two
    computed tensors."""
    for node in _walk_back(tensor, producer, constant):
        computed = [name for name in node.input if name and name not in constant]
        if node.op_type in SCORE_OPS and len(computed) >= 2:
            return True
    return False


def _walk_back(tensor: str, producer: dict[str, onnx.NodeProto], constant: set[str]) -> Iterator[onnx.NodeProto]:
    frontier, seen = [tensor], set()
    for _ in range(MAX_STEPS):
        nodes = [producer[t] for t in frontier if t in producer and t not in constant and t not in seen]
        seen.update(frontier)
        yield from nodes
        frontier = [name for node in nodes if node.op_type in BETWEEN_SCORES_AND_SOFTMAX for name in node.input]
        if not frontier:
            return
