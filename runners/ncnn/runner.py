"""ncnn on CPU. ONNX is converted by the pnnx wheel's native binary with fp32 weights; inputs are bound once.

pnnx renames the graph's inputs and outputs (``in0``, ``out0``, ... in ONNX order) and drops the batch axis
where it can. The artifact's ``io.json`` maps the names back and records, from pnnx's own files, each blob's
shape and how its generated script feeds it (``batch_index``), so outputs come back in the reference's shapes.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import ncnn
import numpy as np

from bench import vulkan
from bench.case import Case
from bench.cpu import Cpu
from bench.execution.calibration import calibration_inputs, calibration_sha256
from bench.execution.convert import (
    Conversion,
    ConversionFailed,
    cached_artifact,
    converter_deadline,
    first_lines,
    run_converter,
)
from bench.execution.graph import graph_io
from bench.plugin import Runner, Unsupported
from bench.runners.ncnn import PNNX_HINT, SPEC, pnnx_binary
from bench.runners.ncnn import int8 as ncnn_int8

PARAM, BIN, IO = "model.ncnn.param", "model.ncnn.bin", "io.json"
ARTIFACT_LAYOUT = 1  # bump when io.json changes, so old cached artifacts are not read
# Passed explicitly so that a change of pnnx's defaults cannot change the artifact silently.
# fp16=0: pnnx writes fp16 weights by default, which destroys PP-OCRv4 det (a BatchNorm weight of 9.8e7).
PNNX_FIXED = {"fp16": 0, "optlevel": 2, "device": "cpu"}
PNNX_OUTPUTS = {
    "ncnnparam": PARAM, "ncnnbin": BIN, "ncnnpy": "model_ncnn.py",
    "pnnxparam": "model.pnnx.param", "pnnxbin": "model.pnnx.bin", "pnnxpy": "model_pnnx.py",
    "pnnxonnx": "model.pnnx.onnx",
}
TYPE_SUFFIX = {"float32": "f32", "float16": "f16", "float64": "f64", "int64": "i64", "int32": "i32",
               "int8": "i8", "uint8": "u8"}
SCALAR_NOTE = "0-d inputs given as [1]: pnnx's inputshape syntax has no 0-d shape"
# Runs pnnx with its output in a log file: run_converter keeps only the first lines, which pnnx fills with an
# echo of its options. exec keeps pnnx as the process that run_converter's deadline kills.
LOG_TO_FILE = ("import os, sys; fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644); "
               "os.dup2(fd, 1); os.dup2(fd, 2); os.execv(sys.argv[2], sys.argv[2:])")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
NOISE = re.compile(r"\[W:onnxruntime|[│├┌└┬┼┴┐┤┘─]|^#+ |\.\.\.\s+[\d.]+ms$|^\w+ =( |$)")
OPTION_FIELDS = (
    "num_threads", "use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic", "use_bf16_packed",
    "use_bf16_storage", "use_int8_inference", "use_int8_packed", "use_int8_storage", "use_int8_arithmetic",
    "use_vulkan_compute", "lightmode", "openmp_blocktime", "use_packing_layout", "use_winograd_convolution",
    "use_sgemm_convolution",
)


# ---- conversion -------------------------------------------------------------------------------------------


def _inputshape(case: Case, names: list[str]) -> str:
    """pnnx's ``inputshape=[1,3,224,224]f32,[1,64]i64`` at the case's batch, in the graph's input order."""
    specs = {s.name: s for s in case.model.inputs}
    parts = []
    for name in names:
        if name not in specs:
            raise ConversionFailed(f"model input {name!r} has no benchmark shape")
        spec = specs[name]
        if spec.dtype not in TYPE_SUFFIX:
            raise ConversionFailed(f"input {name!r}: pnnx's inputshape has no type for {spec.dtype}")
        shape = spec.shape_at(case.batch) or (1,)
        parts.append(f"[{','.join(str(d) for d in shape)}]{TYPE_SUFFIX[spec.dtype]}")
    return ",".join(parts)


def _options(case: Case, input_names: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {"inputshape": _inputshape(case, input_names), **PNNX_FIXED,
                               "kept": [PARAM, BIN, IO], "layout": ARTIFACT_LAYOUT}
    if any(not s.shape for s in case.model.inputs):
        options["scalar_inputs"] = SCALAR_NOTE
    return options


def _link_model(onnx_path: Path, external: list[str], work: Path) -> None:
    """Show pnnx the model inside the work folder: it writes its side files next to the model it reads."""
    (work / "model.onnx").symlink_to(onnx_path.resolve())
    for location in external:
        if Path(location).is_absolute() or ".." in Path(location).parts:
            raise ConversionFailed(f"external data location {location!r} is outside the model's folder")
        target = work / location
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to((onnx_path.parent / location).resolve())


def _what_pnnx_said(log: Path, count: int = 6) -> str:
    """The last informative lines of pnnx's output: no option echo, tables, pass timings or colours."""
    text = ANSI.sub("", log.read_text(errors="replace")) if log.exists() else ""
    lines = [line.strip()[:400] for line in text.splitlines() if line.strip() and not NOISE.search(line.strip())]
    return first_lines("\n".join(lines[-count:]), count)


def _run_pnnx(binary: Path, options: dict[str, Any], work: Path, deadline_s: float) -> str:
    args = ["model.onnx", f"inputshape={options['inputshape']}", *(f"{k}={v}" for k, v in PNNX_FIXED.items()),
            *(f"{k}={v}" for k, v in PNNX_OUTPUTS.items())]
    log = work / "pnnx.log"
    try:
        run_converter([sys.executable, "-c", LOG_TO_FILE, str(log), str(binary), *args], deadline_s, cwd=work)
    except ConversionFailed as exc:
        how = re.search(r"\((exit code -?\d+|signal \d+)\)", str(exc))
        prefix = f"pnnx failed ({how.group(1)})" if how else f"pnnx passed its {deadline_s:g} s deadline"
        said = _what_pnnx_said(log)
        # type(exc): a deadline or a kill stays a ConverterInterrupted, which the cache never records
        raise type(exc)(f"{prefix}: {said}" if said else prefix, ops=re.findall(r"\btodo (\S+)", said)) from None
    return ANSI.sub("", log.read_text(errors="replace"))


BLOB_LINE = re.compile(r"^pnnx\.(Input|Output)\s+(\S+)\s.*?#\S+=\(([^)]*)\)(\w+)", re.MULTILINE)


def _pnnx_blobs(work: Path) -> dict[str, list[dict[str, Any]]]:
    """Graph inputs and outputs from pnnx's own IR: ncnn name, shape, element type, in order."""
    blobs: dict[str, list[dict[str, Any]]] = {"Input": [], "Output": []}
    for kind, name, dims, dtype in BLOB_LINE.findall((work / PNNX_OUTPUTS["pnnxparam"]).read_text()):
        shape = [int(d) for d in dims.split(",") if d.strip()]
        blobs[kind].append({"ncnn": name, "shape": shape, "dtype": dtype})
    return blobs


def _batch_indexes(work: Path) -> dict[str, int]:
    """How pnnx's generated test script builds each input Mat and reads each output (its batch_index)."""
    script = (work / PNNX_OUTPUTS["ncnnpy"]).read_text()
    feeds = re.findall(r'ex\.input\("(\w+)", ncnn\.Mat\(\w+\.numpy\(\), batch_index=(\d+)\)', script)
    reads = re.findall(r"\b(out\d+)\.numpy\(batch_index=(\d+)\)", script)
    return {name: int(index) for name, index in [*feeds, *reads]}


def _unknown_layers(param: Path) -> list[str]:
    """Layer types in the ncnn graph that this ncnn cannot create (pnnx writes ops it could not map as-is)."""
    lines = param.read_text().splitlines()[2:]
    types = {line.split()[0] for line in lines if line.strip()}
    return sorted(t for t in types if ncnn.layer_to_index(t) < 0)


def _io_table(work: Path, names: tuple[list[str], list[str]]) -> dict[str, Any]:
    blobs, indexes = _pnnx_blobs(work), _batch_indexes(work)
    table: dict[str, Any] = {}
    for kind, onnx_names, key in (("Input", names[0], "inputs"), ("Output", names[1], "outputs")):
        found = blobs[kind]
        if len(found) != len(onnx_names):
            raise ConversionFailed(f"pnnx made {len(found)} {key} of the ONNX graph's {len(onnx_names)}")
        for blob, onnx_name in zip(found, onnx_names, strict=True):
            if blob["ncnn"] not in indexes:
                raise ConversionFailed(f"pnnx's script does not say how to feed or read {blob['ncnn']}")
            blob.update(onnx=onnx_name, batch_index=indexes[blob["ncnn"]])
        table[key] = found
    return table


def _produce(binary: Path, onnx_path: Path, names: tuple[list[str], list[str]], external: list[str],
             options: dict[str, Any], deadline_s: float, out: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="pnnx-") as tmp:
        work = Path(tmp)
        _link_model(onnx_path, external, work)
        log = _run_pnnx(binary, options, work, deadline_s)
        if not (work / PARAM).is_file():
            raise ConversionFailed(f"pnnx exited 0 but wrote no {PARAM}: {_what_pnnx_said(work / 'pnnx.log')}")
        unknown = _unknown_layers(work / PARAM)
        if unknown:
            said = first_lines("\n".join(re.findall(r"^(?:todo|ignore) .*$", log, re.MULTILINE)))
            raise ConversionFailed(f"pnnx left layers that ncnn cannot run: {', '.join(unknown)}"
                                   + (f" (pnnx: {said})" if said else ""), ops=unknown)
        table = _io_table(work, names)
        table["weights"] = (work / BIN).is_file() and (work / BIN).stat().st_size > 0
        shutil.move(work / PARAM, out / PARAM)
        if table["weights"]:
            shutil.move(work / BIN, out / BIN)
        (out / IO).write_text(json.dumps(table, indent=1))


# ---- int8 -------------------------------------------------------------------------------------------------

INT8_CONVERTER = "ncnn2table+ncnn2int8 (bench's Python port)"
INT8_PORT = 2  # bump when the port's output changes, so old int8 artifacts are not read
# The method is ncnn2table's ACIQ, not its default KL: KL's thresholds destroy PP-OCRv4 rec (exact match 0.0, issue
# 31), ACIQ keeps it (0.905) and MobileNetV2 (cosine 0.978); one rule for every model, never tuned on evaluation data.
INT8_RECIPE = {"method": "aciq", "weights": "per output channel, ACIQ-clipped (6-bit for 3x3 stride-1 convolutions)",
               "layers": list(ncnn_int8.QUANTIZABLE), "port": INT8_PORT}
INT8_SUMMARY = ncnn_int8.SUMMARY


def _quantize(case: Case, samples: list[dict[str, np.ndarray]], fp32: Path, out: Path) -> None:
    """Run the port as a converter (a subprocess with a deadline) on a copy of the fp32 artifact."""
    if not (fp32 / BIN).is_file():  # no weights, nothing to quantize: the read-back in load says so
        for name in (PARAM, IO):
            shutil.copyfile(fp32 / name, out / name)
        (out / INT8_SUMMARY).write_text(json.dumps({"quantized": 0, "kept_float": {}, "requantized": 0,
                                                     **ncnn_int8.int8_layers((fp32 / PARAM).read_text())}))
        return
    with tempfile.TemporaryDirectory(prefix="ncnn-int8-") as tmp:
        work = Path(tmp)
        for name in (PARAM, BIN, IO):
            shutil.copyfile(fp32 / name, work / name)
        arrays: dict[str, Any] = {f"{i}/{name}": array for i, sample in enumerate(samples)
                                  for name, array in sample.items()}
        np.savez(work / ncnn_int8.SAMPLES, **arrays)
        cmd = [sys.executable, "-m", "bench.runners.ncnn.int8", str(work), PARAM, BIN]
        output = run_converter(cmd, converter_deadline(case, part=0.5), cwd=work)
        if not (work / ncnn_int8.PARAM_OUT).is_file():
            raise ConversionFailed(f"the ncnn int8 port wrote no model: {first_lines(output, 6)}")
        shutil.move(work / ncnn_int8.PARAM_OUT, out / PARAM)
        shutil.move(work / ncnn_int8.BIN_OUT, out / BIN)
        for name in (IO, ncnn_int8.TABLE, INT8_SUMMARY):
            shutil.move(work / name, out / name)


def _recipe(read_back: dict[str, int], folder: Path) -> dict[str, str]:
    """The row's recipe, with the count read back from the written .param, and what bounds it when something does."""
    summary = json.loads((folder / INT8_SUMMARY).read_text())
    recipe = {"recipe": f"ncnn2table port: ACIQ activations, per-channel weights; {read_back['int8_layers']} of "
                        f"{read_back['layers']} convolutions int8"}
    limits = []
    if summary["kept_float"]:
        limits.append(f"{len(summary['kept_float'])} convolutions kept float (a scale of 0 or not finite: "
                      f"{', '.join(sorted(summary['kept_float']))})")
    if read_back["other_quantizable"]:
        limits.append(f"{read_back['other_quantizable']} layers that ncnn2int8 would quantize (Gemm, "
                      "MultiHeadAttention, RNN/LSTM/GRU, Embed, SDPA) run fp32: the port quantizes Convolution, "
                      "ConvolutionDepthWise and InnerProduct only")
    return {**recipe, "limited_by": "bench: " + "; ".join(limits)} if limits else recipe


# ---- running ----------------------------------------------------------------------------------------------


def _host_dtype(pnnx_type: str) -> type:
    """ncnn blobs are fp32 or int32: float inputs go in as float32, integer inputs as int32."""
    return np.int32 if pnnx_type.startswith(("i", "u", "b")) else np.float32


def _set_options(opt: ncnn.Option, precision: str, threads: int, gpu: bool = False) -> dict[str, Any]:
    """Every precision switch set explicitly (ncnn's defaults turn fp16 on, on the CPU and on Vulkan alike);
    returns what was set."""
    fp16, int8 = precision == "fp16", precision == "int8"
    wanted = {
        "num_threads": threads, "use_vulkan_compute": gpu,
        "use_fp16_packed": fp16, "use_fp16_storage": fp16, "use_fp16_arithmetic": fp16,
        "use_bf16_packed": False, "use_bf16_storage": False,
        # int8: ncnn's defaults; its x86 kernels read use_int8_inference (int8 layers of an int8 model), the
        # other three are the storage / packing of int8 blobs
        "use_int8_inference": int8, "use_int8_packed": int8, "use_int8_storage": int8, "use_int8_arithmetic": int8,
    }
    for name, value in wanted.items():
        setattr(opt, name, value)
    return wanted


VULKAN_TIMED_REGION = (
    "Extractor on the Vulkan device: create_extractor(), input() of each host Mat (built and cloned once in bind), "
    "extract() of every output to a host Mat, extractor released: each iteration uploads the inputs, computes on the "
    "device and downloads the outputs, as a caller does; outputs copied to numpy after timing"
)
PIPELINE_CACHE = ("not persisted: each process compiles (ncnn's Python API exposes no pipeline cache; its in-memory "
                  "one dies with the worker), so cold_start_ms includes compiling every shader pipeline")


def _vulkan_device(index: int) -> dict[str, Any]:
    """The device the case ran on, as ncnn's GpuInfo describes it."""
    info = ncnn.get_gpu_info(index)
    return vulkan.describe({
        "index": index, "name": info.device_name(), "vendor_id": info.vendor_id(), "device_id": info.device_id(),
        "type_code": info.type(), "api_version": info.api_version(), "driver_version": info.driver_version(),
    })


def _gpu_read_back(wanted: dict[str, Any], read_back: dict[str, Any], device: dict[str, Any]) -> None:
    """ncnn turns off, after loading, what the Vulkan device cannot do (and Vulkan itself where it finds no device):
    a row must not claim a precision or a device that did not run."""
    if not read_back["use_vulkan_compute"]:
        raise Unsupported("ncnn turned use_vulkan_compute off while loading (no usable Vulkan device): the case "
                          "would run on the CPU")
    dropped = sorted(name for name, value in wanted.items() if value is True and read_back[name] is False)
    if dropped:
        raise Unsupported(f"the Vulkan device {device['name']!r} lacks what {', '.join(dropped)} asks: ncnn turned "
                          "them off while loading, so the row would not be of the precision asked")


def _check(code: int, what: str) -> None:
    if code != 0:
        raise RuntimeError(f"ncnn {what} returned {code} (the reason is in stderr)")


class NcnnRunner(Runner):
    no_profiler = ("the ncnn wheel is built without NCNN_BENCHMARK, ncnn's only per-layer timer (it prints, and "
                   "only in such a build)")
    _device: dict[str, Any] | None = None  # the Vulkan device a vulkan case runs on (set in prepare)
    timed_region = (
        "Extractor: create_extractor(), input() of each input Mat (built and cloned once in bind), extract() of "
        "every output, extractor released; outputs copied to numpy after timing"
    )

    def convert(self, onnx_path: Path) -> Path:
        binary = pnnx_binary()
        if binary is None:
            raise ConversionFailed(f"the pnnx converter binary is not installed: {PNNX_HINT}")
        io = graph_io(onnx_path)
        inputs, outputs, external = list(io.inputs), list(io.outputs), list(io.external_data)
        options = _options(self.case, inputs)
        conversion = Conversion("pnnx", importlib.metadata.version("pnnx"), options)
        deadline_s = converter_deadline(self.case)
        folder, self.conversion = cached_artifact(
            self.case, conversion,
            lambda out: _produce(binary, onnx_path, (inputs, outputs), external, options, deadline_s, out),
        )
        return self._quantized(folder, options) if self.case.precision == "int8" else folder

    def _quantized(self, fp32: Path, source: dict[str, Any]) -> Path:
        """int8: the fp32 conversion quantized by bench's port of ncnn2table + ncnn2int8 on the shared calibration
        set, cached beside it (its options name the method, the calibration set and the fp32 conversion)."""
        samples = calibration_inputs(self.case)
        options = {**INT8_RECIPE, "calibration_sha256": calibration_sha256(samples), "source_conversion": source}
        conversion = Conversion(INT8_CONVERTER, ncnn.__version__, options)
        folder, done = cached_artifact(self.case, conversion, lambda out: _quantize(self.case, samples, fp32, out))
        read_back = ncnn_int8.int8_layers((folder / PARAM).read_text())
        self.conversion = Conversion(done.converter, done.converter_version,
                                     {**options, **_recipe(read_back, folder)}, done.cached)
        return folder

    def load(self, artifact: Path) -> None:
        # ncnn parses and packs weights inside load_param/load_model, which need the options first: "prepare"
        # holds them. Here we read the io table and the files (into the page cache).
        self._artifact = artifact
        self._io = json.loads((artifact / IO).read_text())
        self._int8 = ncnn_int8.int8_layers((artifact / PARAM).read_text()) if self.case.precision == "int8" else None
        if self._int8 is not None and not self._int8["int8_layers"]:
            raise Unsupported(f"the ncnn int8 port left no convolution with int8 parameters ({self._int8}): an int8 "
                              "row would be a float row")
        for name in (PARAM, BIN):
            if (artifact / name).is_file():
                (artifact / name).read_bytes()

    def prepare(self) -> None:
        if self.case.precision not in ("fp32", "fp16", "int8"):
            raise RuntimeError(f"ncnn runner has no {self.case.precision} path")
        gpu = self.case.device == "vulkan"
        if self.case.precision == "fp16" and not gpu:
            declared = SPEC.cpu_precision("fp16", Cpu.here())
            if not declared.ok or not ncnn.cpu_support_arm_asimdhp():  # and ncnn's own probe must agree
                raise Unsupported(declared.reason or "ncnn's cpu_support_arm_asimdhp() says no FP16 SIMD here")
        self.net = ncnn.Net()
        self._device = self._use_vulkan() if gpu else None
        wanted = _set_options(self.net.opt, self.case.precision, self.case.threads, gpu)
        _check(self.net.load_param(str(self._artifact / PARAM)), "load_param")
        if self._io["weights"]:
            _check(self.net.load_model(str(self._artifact / BIN)), "load_model")
        else:
            _check(self.net.load_model(ncnn.DataReaderFromEmpty()), "load_model (no weights)")
        read_back = {name: getattr(self.net.opt, name) for name in wanted}
        if self._device is not None:
            _gpu_read_back(wanted, read_back, self._device)
        if read_back != wanted:
            raise RuntimeError(f"ncnn changed the options it was given: set {wanted}, read back {read_back}")

    def _use_vulkan(self) -> dict[str, Any]:
        """Point the net at ncnn's default Vulkan device; returns that device, described."""
        if ncnn.get_gpu_count() < 1:
            raise Unsupported(f"ncnn sees no Vulkan device here: {vulkan.probe()[1]}")
        index = ncnn.get_default_gpu_index()
        self.net.set_vulkan_device(index)
        self.timed_region = VULKAN_TIMED_REGION
        return _vulkan_device(index)

    def bind(self, inputs: dict[str, np.ndarray]) -> None:
        # ncnn.Mat(ndarray) is zero-copy; clone() gives ncnn its own buffer, so an in-place first layer can
        # neither write into nor outlive the numpy array.
        self._bound = []
        for item in self._io["inputs"]:
            array = np.ascontiguousarray(inputs[item["onnx"]], dtype=_host_dtype(item["dtype"]))
            self._bound.append((item["ncnn"], ncnn.Mat(array.reshape(array.shape or (1,)),
                                                       batch_index=item["batch_index"]).clone()))
        self._output_names = [item["ncnn"] for item in self._io["outputs"]]
        self._create = self.net.create_extractor
        self._results: list = []

    def infer(self) -> None:
        ex = self._create()
        for name, mat in self._bound:
            ex.input(name, mat)
        self._results = [ex.extract(name) for name in self._output_names]

    def outputs(self) -> dict[str, np.ndarray]:
        copies = {}
        for item, (code, mat) in zip(self._io["outputs"], self._results, strict=True):
            if code != 0 or mat.empty():
                what = f"code {code}" if code else "an empty Mat"
                raise RuntimeError(f"ncnn extract({item['ncnn']!r}) gave {what}")
            kind = "i" if item["dtype"].startswith(("i", "u", "b")) else "f"
            data = np.array(mat.numpy(kind, batch_index=item["batch_index"]), copy=True)
            if data.size != int(np.prod(item["shape"])):
                raise RuntimeError(f"output {item['onnx']!r}: ncnn gave {data.shape}, expected {item['shape']}")
            copies[item["onnx"]] = data.reshape(item["shape"])
        return copies

    def facts(self) -> dict[str, Any]:
        options = {name: getattr(self.net.opt, name) for name in OPTION_FIELDS}
        return {
            "runtime_version": ncnn.__version__,
            "precision_used": self.case.precision,
            "precision_source": "set explicitly on net.opt before loading and read back (use_fp16_*, use_bf16_*, "
                                "use_int8_*); ncnn does not report the precision each layer ran in",
            "threads_used": options["num_threads"],
            "options": options,
            "openmp_blocktime_note": "ncnn's default kept: OpenMP threads spin this many ms after each call; "
                                     "the harness calls back to back",
            "cpu": {"x86_avx2": bool(ncnn.cpu_support_x86_avx2()),
                    "arm_asimdhp": bool(ncnn.cpu_support_arm_asimdhp())},
            "io_names": {item["onnx"]: item["ncnn"] for item in [*self._io["inputs"], *self._io["outputs"]]},
            # int8: read back from the loaded .param: Convolution / ConvolutionDepthWise / InnerProduct layers, those
            # with int8_scale_term (8=), those that also requantize their output for the next int8 convolution
            "int8_readback": self._int8,
            "phases": "load: read io.json and the files; prepare: Net with options, load_param + load_model "
                      "(parse, weight packing, layer pipelines)",
            **(self._vulkan_facts() if self._device is not None else {}),
        }

    def _vulkan_facts(self) -> dict[str, Any]:
        device = self._device or {}
        return {
            "vulkan_device": device,
            # a CPU running the shaders: the row is a functional check, never ranked (bench/results/rows.py)
            "software_device": device["name"] if device.get("software") else None,
            "transfers": "timed: each iteration uploads the inputs and downloads the outputs (host Mats in, host "
                         "Mats out), as a caller pays",
            "pipeline_cache": PIPELINE_CACHE,
            "phases": "load: read io.json and the files; prepare: Net with options on the Vulkan device, load_param + "
                      "load_model (parse, weight upload, shader pipelines compiled); first inference: the first "
                      "command buffers",
        }

    def close(self) -> None:
        self._results = []
        self._bound = []
        self.net.clear()
