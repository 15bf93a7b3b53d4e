"""Transformers, laid out like torch.onnx exports at opset 17: MatMul + Add linears, LayerNormalization,
Softmax attention with explicit Reshape/Transpose head splitting, Gelu in its exact Erf form.

- vit_tiny_16_224: ViT-Tiny/16 (Dosovitskiy et al. 2021; the DeiT-Ti shape of Touvron et al. 2021, as in
  timm's vit_tiny_patch16_224): pre-norm, fused qkv, class token, learned position embedding.
- minilm_l6_encoder: a BERT encoder (Devlin et al. 2019) with the shape of MiniLM-L6-H384 (Wang et al.
  2020), as in HF transformers' BertModel: post-norm, separate q/k/v, padding mask as an additive bias.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto

from .graph import Net, Tensor

# ---------------------------------------------------------------------------------------------- ViT
IMAGE = [1, 3, 224, 224]
PATCH = 16
VIT_DIM, VIT_DEPTH, VIT_HEADS, VIT_MLP = 192, 12, 3, 768
VIT_TOKENS = (224 // PATCH) ** 2 + 1  # 196 patches + the class token
CLASSES = 1000
VIT_LN_EPS = 1e-6
EMBED_STD = 0.02  # BERT/timm initializer range for embeddings and tokens
# Output std of each residual branch (attention, MLP): with 2 x 12 branches the stream grows to ~7x the
# variance of the patch embedding instead of ~25x; the pre-norms rescale what each branch reads anyway.
BRANCH_STD = 0.5
# Output std of the query and key projections: with 1/sqrt(head_dim) scaling, attention logits get std
# QK_STD**2, i.e. 4: peaked attention like a trained model's. At std 1 every head averages ~all tokens and
# random layers make the tokens ever more alike (rank collapse), so outputs hardly depend on the input.
QK_STD = 2.0
# Softmax-weighted averages of the value vectors keep this share of their variance (measured 0.3..0.8)
ATTENTION_VAR = 0.5


def _head_split(net: Net, x: Tensor, tokens: int, heads: int, perm: list[int]) -> str:
    """[b, tokens, heads * d] -> [b, tokens, heads, d] -> `perm` (torch: view + permute)."""
    shaped = net.op("Reshape", [x.name, net.const([0, tokens, heads, x.channels // heads])])
    return net.op("Transpose", [shaped], perm=perm)


def _head_merge(net: Net, ctx: str, tokens: int, dim: int) -> Tensor:
    """[b, heads, tokens, d] -> [b, tokens, heads * d]."""
    merged = net.op("Transpose", [ctx], perm=[0, 2, 1, 3])
    return net.tensor(net.op("Reshape", [merged, net.const([0, tokens, dim])]), dim, ATTENTION_VAR)


def _vit_attention(net: Net, x: Tensor) -> Tensor:
    head_dim = VIT_DIM // VIT_HEADS
    qkv_std = np.repeat([QK_STD, QK_STD, 1.0], VIT_DIM)  # fused [q | k | v] output features
    qkv = net.linear(x, 3 * VIT_DIM, std=qkv_std, name="qkv")
    shaped = net.op("Reshape", [qkv.name, net.const([0, VIT_TOKENS, 3, VIT_HEADS, head_dim])])
    stacked = net.op("Transpose", [shaped], perm=[2, 0, 3, 1, 4])  # [3, b, heads, tokens, d]
    q, k, v = (net.op("Gather", [stacked, net.const(i)], axis=0) for i in range(3))
    scores = net.op("MatMul", [q, net.op("Transpose", [k], perm=[0, 1, 3, 2])])
    scores = net.op("Mul", [scores, net.const(1.0 / math.sqrt(head_dim), np.float32)])
    ctx = net.op("MatMul", [net.op("Softmax", [scores], axis=-1), v])
    return net.linear(_head_merge(net, ctx, VIT_TOKENS, VIT_DIM), VIT_DIM, std=BRANCH_STD, name="proj")


def _vit_block(net: Net, x: Tensor) -> Tensor:
    with net.scope("attn"):
        x = net.add(x, _vit_attention(net, net.layer_norm(x, VIT_LN_EPS, name="norm1")))
    with net.scope("mlp"):
        h = net.linear(net.layer_norm(x, VIT_LN_EPS, name="norm2"), VIT_MLP, name="fc1")
        x = net.add(x, net.linear(net.act(h, "gelu"), VIT_DIM, std=BRANCH_STD, name="fc2"))
    return x


def _vit_embed(net: Net, image: Tensor) -> Tensor:
    """Patch conv -> [b, 196, dim], class token expanded over the batch and prepended, + positions."""
    patches = net.conv(image, VIT_DIM, PATCH, PATCH, pad=0, bn=None, name="patch_embed.proj")
    flat = net.op("Reshape", [patches.name, net.const([0, VIT_DIM, -1])])
    tokens = net.op("Transpose", [flat], perm=[0, 2, 1])
    cls_token = net.param("cls_token", net.uniform((1, 1, VIT_DIM), EMBED_STD))
    batch = net.op("Shape", [tokens], start=0, end=1)
    expand_to = net.op("Concat", [batch, net.const([1, VIT_DIM])], axis=0)
    cls = net.op("Expand", [cls_token, expand_to])
    x = net.op("Concat", [cls, tokens], axis=1)
    x = net.op("Add", [x, net.param("pos_embed", net.uniform((1, VIT_TOKENS, VIT_DIM), EMBED_STD))])
    return net.tensor(x, VIT_DIM, patches.var)


def build_vit_tiny_16_224() -> onnx.ModelProto:
    """ViT-Tiny/16 at 224x224: 5.7M parameters, 1.26 GMACs."""
    net = Net("vit_tiny_16_224", seed=80)
    x = _vit_embed(net, net.image(IMAGE))
    for i in range(VIT_DEPTH):
        with net.scope(f"blocks.{i}"):
            x = _vit_block(net, x)
    x = net.layer_norm(x, VIT_LN_EPS, name="norm")
    cls = net.tensor(net.op("Gather", [x.name, net.const(0)], axis=1), VIT_DIM, x.var)  # x[:, 0]
    net.output(net.gemm(cls, CLASSES, name="head"), "logits", [1, CLASSES])
    return net.build("ViT-Tiny/16, 224x224 input, seeded random weights (bench.models)")


# ------------------------------------------------------------------------------------------- MiniLM
SEQ = 128
VOCAB, MAX_POSITIONS, TOKEN_TYPES = 30522, 512, 2
BERT_DIM, BERT_LAYERS, BERT_HEADS, BERT_FFN = 384, 6, 12, 1536
BERT_LN_EPS = 1e-12
# Additive bias of padded positions. HF uses finfo(float32).min; -10000 (what BERT used first) masks as
# well and stays finite when a runtime converts the graph to float16.
MASK_BIAS = -10000.0


def _bert_embed(net: Net, input_ids: Tensor) -> Tensor:
    with net.scope("embeddings"):
        words = net.op(
            "Gather",
            [net.param("word_embeddings.weight", net.uniform((VOCAB, BERT_DIM), EMBED_STD)), input_ids.name],
        )
        token_types = net.param("token_type_embeddings.weight", net.uniform((TOKEN_TYPES, BERT_DIM), EMBED_STD))
        positions = net.param("position_embeddings.weight", net.uniform((MAX_POSITIONS, BERT_DIM), EMBED_STD))
        # token_type_ids default to zeros and position_ids to 0..SEQ-1: constants once traced at SEQ
        x = net.op("Add", [words, net.op("Gather", [token_types, net.const(np.zeros((1, SEQ)))])])
        x = net.op("Add", [x, net.op("Gather", [positions, net.const(np.arange(SEQ)[None, :])])])
        return net.layer_norm(net.tensor(x, BERT_DIM, 3 * EMBED_STD**2), BERT_LN_EPS, name="LayerNorm")


def _mask_bias(net: Net, attention_mask: Tensor) -> str:
    """[b, SEQ] of 1 (token) / 0 (padding) -> [b, 1, 1, SEQ] additive bias: 0 / MASK_BIAS."""
    mask = net.op("Unsqueeze", [attention_mask.name, net.const([1, 2])])
    mask = net.op("Cast", [mask], to=TensorProto.FLOAT)
    inverted = net.op("Sub", [net.const(1.0, np.float32), mask])
    return net.op("Mul", [inverted, net.const(MASK_BIAS, np.float32)])


def _bert_attention(net: Net, x: Tensor, mask_bias: str) -> Tensor:
    head_dim = BERT_DIM // BERT_HEADS
    with net.scope("attention.self"):
        q = _head_split(net, net.linear(x, BERT_DIM, std=QK_STD, name="query"), SEQ, BERT_HEADS, [0, 2, 1, 3])
        k = _head_split(net, net.linear(x, BERT_DIM, std=QK_STD, name="key"), SEQ, BERT_HEADS, [0, 2, 3, 1])
        v = _head_split(net, net.linear(x, BERT_DIM, name="value"), SEQ, BERT_HEADS, [0, 2, 1, 3])
        scores = net.op("Div", [net.op("MatMul", [q, k]), net.const(math.sqrt(head_dim), np.float32)])
        probs = net.op("Softmax", [net.op("Add", [scores, mask_bias])], axis=-1)
        ctx = _head_merge(net, net.op("MatMul", [probs, v]), SEQ, BERT_DIM)
    with net.scope("attention.output"):
        out = net.linear(ctx, BERT_DIM, name="dense")
        return net.layer_norm(net.add(out, x), BERT_LN_EPS, name="LayerNorm")


def _bert_ffn(net: Net, x: Tensor) -> Tensor:
    h = net.act(net.linear(x, BERT_FFN, name="intermediate.dense"), "gelu")
    with net.scope("output"):
        return net.layer_norm(net.add(net.linear(h, BERT_DIM, name="dense"), x), BERT_LN_EPS, name="LayerNorm")


def build_minilm_l6_encoder() -> onnx.ModelProto:
    """MiniLM-L6-H384-shaped BERT encoder over 128 tokens: 22.6M parameters, 1.4 GMACs."""
    net = Net("minilm_l6_encoder", seed=81)
    input_ids = net.input("input_ids", [1, SEQ], TensorProto.INT64)
    attention_mask = net.input("attention_mask", [1, SEQ], TensorProto.INT64)
    x = _bert_embed(net, input_ids)
    mask_bias = _mask_bias(net, attention_mask)
    for i in range(BERT_LAYERS):
        with net.scope(f"encoder.layer.{i}"):
            x = _bert_ffn(net, _bert_attention(net, x, mask_bias))
    net.output(x, "last_hidden_state", [1, SEQ, BERT_DIM])
    return net.build("MiniLM-L6-H384-shaped BERT encoder, 128 tokens, seeded random weights (bench.models)")
