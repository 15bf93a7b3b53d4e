"""The results schema: one typed table of columns that makes the parquet schema and docs/RESULTS.md.

Run ``python -m bench.docs`` after changing it (tests/test_docs.py checks the doc is current).
Bump SCHEMA_VERSION when a column changes meaning or type; adding a column needs no bump.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from bench.contract import Status

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    unit: str
    description: str


def _c(name: str, type_: pa.DataType, unit: str, description: str) -> Column:
    return Column(name, type_, unit, description)


STR, F64, I64, I32, BOOL = pa.string(), pa.float64(), pa.int64(), pa.int32(), pa.bool_()
TS = pa.timestamp("us", tz="UTC")

CASE_COLUMNS: tuple[Column, ...] = (
    _c("schema_version", I32, "", "version of this schema"),
    _c("run_id", STR, "", "id of the run that wrote the row; joins the runs table"),
    _c("timestamp", TS, "UTC", "when the case finished"),
    _c("suite", STR, "", "suite name"),
    _c("case_key", STR, "", "model/runner/device/precision/batch/threads/scenario: the case's identity"),
    _c("model", STR, "", "zoo model name, or the user's file name"),
    _c("model_sha256", STR, "", "sha256 of the ONNX bytes"),
    _c("model_source", STR, "", "built / wheel / user / torch (bench run --torch: the user's PyTorch factory)"),
    _c("weights", STR, "", "whether the model's weights are trained: trained (the zoo's wheel models), random (seeded) "
       "(its built models: speed and parity mean as much, int8 task accuracy little), user (the user's own model)"),
    _c("source_path", STR, "", "how the model reached the runtime where it was not ONNX read directly: \"PyTorch -> "
       "ONNX -> openvino\" (the export), \"PyTorch -> ExecuTorch\" (the factory's module), \"ONNX -> onnx2torch -> "
       "eager\" (the bridge)"),
    _c("torch_export", STR, "", "JSON, a model from PyTorch: exporter (torch.onnx.export), version, options, output "
       "names, the state dict's sha256 and the export's error if it failed"),
    _c("reference_source", STR, "", "what the parity reference is: ONNX Runtime fp32 (graph optimizations off), or "
       "for a model from PyTorch the module's own fp32 eager output"),
    _c("runner", STR, "", "runner plugin name"),
    _c("runner_version", STR, "", "version of the runtime's package (as the runtime reports it where the worker "
       "read it back)"),
    _c("runtime_version_requested", STR, "", "the release the version axis asked for (--versions, a suite's "
       "versions), run in an environment of its own; null: the release installed beside bench"),
    _c("device", STR, "", "device asked for (cpu, cuda, vulkan, ...)"),
    _c("software_device", STR, "", "the device's name where the case ran on a software device (a CPU running the "
       "GPU's work: Mesa's lavapipe / llvmpipe, SwiftShader): a functional check whose timings measure the CPU, so "
       "reports and compare never rank it, like an emulated run's; null on real hardware"),
    _c("precision", STR, "", "precision asked for (fp32, fp16, bf16, int8, int8_weights: see Precisions below)"),
    _c("precision_used", STR, "", "precision the runtime reports it ran"),
    _c("precision_feature", STR, "", "CPU feature that let a reduced precision run, from the runner's declaration "
       "over the CPU's flags (bench.cpu): a flag such as avx512_fp16 or asimdhp, with how it is used"),
    _c("batch", I32, "items", "batch size"),
    _c("threads", I32, "threads", "compute threads asked for"),
    _c("threads_used", I32, "threads", "compute threads the runtime reports"),
    _c("cores", STR, "", "the cores axis: all (every CPU the run may use), or the cluster big / little / prime the "
       "worker was pinned to (bench.topology)"),
    _c("cpus", STR, "", "the CPUs the worker was pinned to, as a list (0-3,6)"),
    _c("temp_start_c", F64, "C", "hottest thermal zone when the case started (after any --cooldown-until wait)"),
    _c("temp_end_c", F64, "C", "hottest thermal zone when the case's worker ended"),
    _c("cooldown_wait_s", F64, "s", "seconds --cooldown-until waited for the machine to cool before the case"),
    _c("cpu_freq_ratio", F64, "", "lowest current / top frequency over the case's CPUs right after its timed loop "
       "(under 0.95: throttled or capped), where cpufreq tells"),
    _c("scenario", STR, "", "latency (one request at a time), throughput (bench's async queue of N requests), server "
       "or offline (MLPerf LoadGen: see Server and offline below)"),
    _c("status", STR, "", ", ".join(s.value for s in Status) + " (bench.contract.Status)"),
    _c("error", STR, "", "why the case did not complete, or why it was not run"),
    _c("exit_code", I32, "", "worker exit code, where it exited"),
    _c("signal", STR, "", "signal that killed the worker, where one did"),
    _c("stderr_tail", STR, "", "last 4000 bytes of the worker's stderr"),
    _c("iterations", I64, "iterations", "timed iterations"),
    _c("median_ms", F64, "ms", "median latency (p50)"),
    _c("median_ci_low_ms", F64, "ms", "lower bound of the 95% distribution-free CI of the median"),
    _c("median_ci_high_ms", F64, "ms", "upper bound of the 95% CI of the median"),
    _c("mean_ms", F64, "ms", "mean latency"),
    _c("std_ms", F64, "ms", "standard deviation of latency"),
    _c("min_ms", F64, "ms", "fastest iteration"),
    _c("max_ms", F64, "ms", "slowest iteration"),
    _c("p90_ms", F64, "ms", "90th percentile latency"),
    _c("p95_ms", F64, "ms", "95th percentile latency"),
    _c("p99_ms", F64, "ms", "99th percentile latency"),
    _c("cv", F64, "", "coefficient of variation of latency (std / mean)"),
    _c("unstable", BOOL, "", "cv > 0.10, or the median's CI never reached its target before max_time"),
    _c("items_per_iteration", I64, "items", "batch x requests per timed call (requests > 1 in throughput)"),
    _c("throughput_per_s", F64, "items/s", "items_per_iteration x iterations / total timed time; server and "
       "offline: loadgen_qps x batch (null where no server QPS was VALID)"),
    _c("loadgen_qps", F64, "queries/s", "server: the highest target QPS that MLPerf LoadGen judged VALID at the p99 "
       "bound (Poisson arrivals); offline: LoadGen's samples per second (all queries at once); null: none VALID"),
    _c("loadgen_valid", BOOL, "", "LoadGen's verdict on the reported trial: VALID (the p99 bound held, early "
       "stopping agrees, min duration and min query count met)"),
    _c("loadgen_reason", STR, "", "why the row is not VALID, in LoadGen's terms (empty when VALID)"),
    _c("loadgen_p50_ms", F64, "ms", "LoadGen's 50th percentile latency at loadgen_qps (server: from the query's "
       "scheduled arrival, queueing included)"),
    _c("loadgen_p90_ms", F64, "ms", "LoadGen's 90th percentile latency at loadgen_qps"),
    _c("loadgen_p99_ms", F64, "ms", "LoadGen's 99th percentile latency at loadgen_qps"),
    _c("loadgen_p99_bound_ms", F64, "ms", "the server's p99 latency bound (the suite's [loadgen] p99_ms, or its "
       "model's in p99_ms_by_model); null offline"),
    _c("loadgen_trial_count", I32, "trials", "LoadGen runs the case made: offline ones (the server's ceiling), then "
       "the server's bisection over target QPS"),
    _c("loadgen_trials", STR, "", "JSON list of every trial: scenario, target_qps, valid, reason, queries, "
       "achieved_qps, p50/p90/p99_ms, duration_s"),
    _c("loadgen_requests_in_flight", I32, "requests", "requests the runtime ran side by side (one driver thread "
       "each)"),
    _c("driver_ceiling_qps", F64, "queries/s", "what bench's Python driver alone pushes through LoadGen on this "
       "machine (a no-op request, offline, same requests in flight): a loadgen_qps near it measures the driver"),
    _c("loadgen_version", STR, "", "LoadGen's version and commit, from its log"),
    _c("loadgen_settings", STR, "", "JSON: LoadGen's effective settings of the reported trial (its detail log's "
       "effective_* keys)"),
    _c("loadgen_summary_log", STR, "", "LoadGen's mlperf_log_summary.txt of the reported trial"),
    _c("loadgen_detail_log", STR, "", "LoadGen's mlperf_log_detail.txt of the reported trial (at most 200,000 "
       "characters)"),
    _c("model_macs", I64, "MACs", "multiply-accumulates of one inference at batch 1, counted from the graph; null "
       "when unknown (a count past int64: an untaken If branch can declare any size)"),
    _c("achieved_gflops", F64, "GFLOP/s", "2 x model_macs x items per iteration / median latency"),
    _c("stop_reason", STR, "", "ci_reached, max_time or max_iterations; loadgen for server and offline rows"),
    _c("warmup_iterations", I64, "iterations", "untimed iterations before measuring"),
    _c("convert_ms", F64, "ms", "conversion from ONNX to the runtime's format (0 for ONNX runtimes)"),
    _c("load_ms", F64, "ms", "reading the model (see runner_facts.phases for what it holds)"),
    _c("prepare_ms", F64, "ms", "session creation / compilation"),
    _c("first_inference_ms", F64, "ms", "first (cold) inference"),
    _c("worker_start_ms", F64, "ms", "from starting the worker to its main(): a fork of bench's fork server, or a "
       "fresh interpreter and bench's imports (worker_started_by says which)"),
    _c("worker_started_by", STR, "", "how the case's process began: 'fork server' (forked from a process that has "
       "imported numpy and bench, no runtime) or 'fresh interpreter'"),
    _c("import_ms", F64, "ms", "importing the runner's module, and with it the runtime"),
    _c("warmup_ms", F64, "ms", "the untimed warm-up iterations"),
    _c("timed_ms", F64, "ms", "the timed loop, wall time"),
    _c("parity_ms", F64, "ms", "running the parity inputs and comparing them with the fp32 reference"),
    _c("task_ms", F64, "ms", "task accuracy on the labelled set (OCR models), where the model has a task"),
    _c("write_ms", F64, "ms", "the worker writing the raw samples"),
    _c("profile_ms", F64, "ms", "the per-op profile pass (--profile) after parity: its own session or profiler set-up "
       "and its runs; null where the case was not profiled"),
    _c("overhead_ms", F64, "ms", "the worker's wall time outside the timed loop and conversion (wall_s minus timed_ms "
       "and convert_ms): what a case costs beyond what it measures"),
    _c("cold_start_ms", F64, "ms", "load + prepare + first inference (conversion excluded)"),
    _c("peak_rss_mb", F64, "MiB", "peak resident memory of the worker process"),
    _c("cpu_ms_per_inference", F64, "ms", "process CPU time over the timed loop / iterations"),
    _c("cpu_utilization", F64, "cores", "process CPU time / wall time of the timed loop"),
    _c("threads_ok", BOOL, "", "cpu_utilization <= threads + 0.3: the runtime kept to its thread limit"),
    _c("timed_region", STR, "", "what each timed iteration includes"),
    _c("runner_facts", STR, "", "JSON: options, providers and phases as the runner reports them"),
    _c("converter", STR, "", "tool that converted ONNX to the runtime's format, if any"),
    _c("converter_version", STR, "", "its version"),
    _c("conversion_options", STR, "", "JSON: the options it was given"),
    _c("calibration_sha256", STR, "", "int8: hash of the calibration set (bench.execution.calibration), the same "
       "samples for every runtime"),
    _c("quant_recipe", STR, "", "int8: how the runtime's own quantizer was driven (method, granularity, layers kept "
       "float and why), from the conversion's options"),
    _c("quant_limit", STR, "", "int8: what bounds the row, where something does: 'build: ' (the runtime as "
       "installed lacks kernels), 'runtime defect: ' or 'bench: ' (a tool bench does not drive)"),
    _c("conversion_cached", BOOL, "", "the converted artifact came from the cache (convert_ms is then the lookup)"),
    _c("runtime_env_ms", F64, "ms", "making the case's runtime environment (the version axis: uv venv and install) "
       "in this run, before anything was timed; null where it was found made or the case has none"),
    _c("conversion_ahead_ms", F64, "ms", "the conversion that made this case's cached artifact in this run's pass "
       "ahead of timing (several conversions at a time, so a busier machine than convert_ms's); null where the case "
       "converted itself or the artifact came from an earlier run"),
    _c("accuracy_ok", BOOL, "", "outputs within the precision's tolerance of the fp32 reference"),
    _c("accuracy_reason", STR, "", "why accuracy_ok is false or null"),
    _c("max_abs_error", F64, "", "max |output - reference| over all parity inputs"),
    _c("max_rel_error", F64, "", "max relative error, denominator floored at 1e-3 of the output scale"),
    _c("normalized_error", F64, "", "max |output - reference| / max |reference|"),
    _c("cosine", F64, "", "cosine similarity of all outputs with the reference (worst of the parity inputs)"),
    _c("top1_agreement", F64, "", "classifiers: share of samples whose argmax matches the reference's"),
    _c("parity_inputs", I32, "inputs", "fixed inputs compared with the reference"),
    _c("task_metric", STR, "", "task accuracy metric on the zoo's labelled data (real trained models only)"),
    _c("task_value", F64, "", "its value, from this runner at this precision (batch 1)"),
    _c("task_n", I32, "samples", "labelled samples scored"),
    _c("task_metrics", STR, "", "JSON: every metric of the task"),
    _c("task_reused_from", STR, "", "the case key whose score this is, where this case's parity outputs were "
       "bit-identical to that case's (same model, runtime and version, precision, device, batch): the labelled set "
       "was not run again (another thread count, typically); empty where it was scored here"),
    _c("profile_runs", I32, "runs", "--profile: inferences the per-op profile kept (the first profiled run is dropped "
       "as the profiler's warm-up); the nodes are in the ops table"),
    _c("profile_ops", I32, "nodes", "--profile: nodes the runtime's profiler reported (rows of the ops table)"),
    _c("profile_total_ms", F64, "ms", "--profile: median over the kept runs of the per-run sum of node times"),
    _c("profile_coverage", F64, "", "--profile, latency cases: profile_total_ms / median_ms, how much of the case's "
       "time the per-op times account for (below 1: time outside the kernels; above: the profiler's own cost)"),
    _c("profile_agrees", BOOL, "", "--profile: profile_coverage within 1 +- 0.25 (bench.results.rows.PROFILE_MARGIN "
       "says why that margin); false: the per-op times do not add up to the case's time, profile_note says by how "
       "much"),
    _c("profile_note", STR, "", "--profile: why the case has no per-op times (a runtime without a profiler bench can "
       "drive, or the pass failed), or by how much they disagree with the median"),
    _c("wall_s", F64, "s", "wall time of the whole worker process"),
    _c("samples_ns", pa.list_(I64), "ns", "every timed iteration, in order"),
)

RUN_COLUMNS: tuple[Column, ...] = (
    _c("schema_version", I32, "", "version of this schema"),
    _c("run_id", STR, "", "id of the run"),
    _c("timestamp", TS, "UTC", "when the run started"),
    _c("suite", STR, "", "suite name"),
    _c("command", STR, "", "the command line"),
    _c("argv", STR, "", "JSON: the run's arguments, replayed by --resume"),
    _c("status", STR, "", "running, complete, interrupted (SIGTERM / Ctrl-C) or failed (an error stopped the run; "
       "its finished rows stay)"),
    _c("cases_planned", I32, "cases", "cases in the plan"),
    _c("cases_written", I32, "cases", "case rows written so far"),
    _c("plan_sha256", STR, "", "sha256 of the planned case keys and model hashes, in order: `--resume` refuses a "
       "run whose plan now differs (a suite file edited, or read from another folder)"),
    _c("bench_version", STR, "", "version of bench"),
    _c("git_commit", STR, "", "git commit of the bench checkout, where it is one"),
    _c("machine_id", STR, "", "stable hash of the machine's identity (not reversible): keys trend lines"),
    _c("machine_label", STR, "", "--machine-label: the hardware label of the CI runner"),
    _c("shard", STR, "", "--shard I/N this run covered, if sharded"),
    _c("cpu_model", STR, "", "CPU model name"),
    _c("cpu_arch", STR, "", "machine architecture (x86_64, aarch64, ...)"),
    _c("kernel_arch", STR, "", "the kernel's architecture (/proc/sys/kernel/arch): differs from cpu_arch when the "
       "run was emulated"),
    _c("emulated", BOOL, "", "the run's programs ran under user-mode emulation (qemu-user via binfmt_misc): its "
       "timings measure the emulator, so reports and compare never rank them"),
    _c("emulator", STR, "", "what emulated it and the CPU model asked for (QEMU_CPU), where emulated"),
    _c("soc_model", STR, "", "board or SoC from the device tree (/proc/device-tree/model), where there is one"),
    _c("cpu_cores", STR, "", "JSON [{cpu, part, capacity, max_khz}]: each CPU, with its ARM core name from "
       "/proc/cpuinfo (CPU implementer / part)"),
    _c("cpu_clusters", STR, "", "JSON [{name, cpus, parts, capacity, max_mhz, governor}]: the clusters the cores "
       "axis pins to, fastest first (one cluster, all, where the kernel tells none apart)"),
    _c("thermal_zones", STR, "", "JSON {zone: C} at the start of the run"),
    _c("cores_physical", I32, "cores", "physical cores"),
    _c("cores_logical", I32, "cores", "logical CPUs"),
    _c("cpus_allowed", I32, "cores", "CPUs this process may run on (affinity / cgroup)"),
    _c("isa_flags", pa.list_(STR), "", "benchmark-relevant ISA flags: avx2, avx512f, amx, bf16, neon, ..."),
    _c("cpu_precision_features", STR, "", "JSON {feature: [flags present]}: fp16, bf16, vnni, amx, avx512 on x86; "
       "fp16 (asimdhp), dotprod, i8mm, bf16, sve on ARM"),
    _c("memory_gb", F64, "GiB", "total memory"),
    _c("os", STR, "", "operating system and release"),
    _c("kernel", STR, "", "kernel version"),
    _c("python", STR, "", "Python version"),
    _c("packages", STR, "", "JSON: versions of the runtimes and libraries that matter"),
    _c("cpu_governor", STR, "", "cpufreq governor(s), or unknown"),
    _c("turbo", STR, "", "turbo boost on / off / unknown"),
    _c("load_avg_1m", F64, "", "1-minute load average at the start"),
    _c("busy_processes", pa.list_(STR), "", "other processes using >= 20% of a CPU at the start"),
    _c("max_temperature_c", F64, "C", "hottest thermal zone at the start, where readable"),
    _c("swap_used_mb", F64, "MiB", "swap in use at the start"),
    _c("noise_warnings", pa.list_(STR), "", "why this machine may give noisy numbers (empty when quiet)"),
    _c("gpus", STR, "", "JSON: GPUs and driver from NVML, where present"),
    _c("vulkan_devices", STR, "", "JSON [{index, name, vendor, type, software, api_version, driver_version, "
       "heap_budget_mb, support}]: each Vulkan device ncnn sees (bench.vulkan; type discrete / integrated / virtual "
       "/ cpu, support: fp16 / int8 packed, storage, uniform, arithmetic and bf16 as ncnn reports them), or "
       "{why: ...} where there is none"),
    _c("peak_gflops", STR, "", "JSON {threads: GFLOP/s} of a 1024x1024 fp32 numpy matmul: the machine's yardstick"),
)


# The per-op profile pass (--profile): one row per node of a profiled case, in its own table (ops/, beside cases/).
OP_COLUMNS: tuple[Column, ...] = (
    _c("schema_version", I32, "", "version of this schema"),
    _c("run_id", STR, "", "id of the run; joins the cases and runs tables"),
    _c("case_key", STR, "", "the profiled case; joins the cases table"),
    _c("model", STR, "", "zoo model name, or the user's file name"),
    _c("runner", STR, "", "runner plugin name"),
    _c("runner_version", STR, "", "version of the runtime"),
    _c("precision", STR, "", "precision the case asked for"),
    _c("threads", I32, "threads", "compute threads asked for"),
    _c("rank", I32, "", "1 for the node that took longest, and so on"),
    _c("node", STR, "", "the node's name as the runtime's profiler gives it (after the runtime's own fusions)"),
    _c("op_type", STR, "", "the op type in the runtime's own words (ORT: ONNX op; OpenVINO: layer type; MNN: op "
       "type; TVM: the compiled function; PyTorch: the aten op)"),
    _c("kernel", STR, "", "what ran it, where the profiler says: ORT's execution provider, OpenVINO's exec_type "
       "(kernel and precision, e.g. brgconv_avx512_FP32), MNN's backend"),
    _c("op_precision", STR, "", "the precision the node ran in, where the profiler says"),
    _c("median_ms", F64, "ms", "the node's median time over the kept profile runs"),
    _c("share", F64, "", "median_ms / the sum of the case's node medians: the node's part of the profiled time (the "
       "case's shares add up to 1)"),
    _c("op_runs", I32, "runs", "kept profile runs that reported the node"),
)


def arrow_schema(columns: tuple[Column, ...]) -> pa.Schema:
    fields = [pa.field(c.name, c.type, metadata={"unit": c.unit, "description": c.description}) for c in columns]
    return pa.schema(fields, metadata={"schema_version": str(SCHEMA_VERSION)})


CASE_SCHEMA = arrow_schema(CASE_COLUMNS)
RUN_SCHEMA = arrow_schema(RUN_COLUMNS)
OP_SCHEMA = arrow_schema(OP_COLUMNS)


def _table(title: str, columns: tuple[Column, ...]) -> list[str]:
    lines = [f"## {title}", "", "| column | type | unit | description |", "|---|---|---|---|"]
    lines += [f"| `{c.name}` | {c.type} | {c.unit} | {c.description} |" for c in columns]
    return lines + [""]


def results_markdown() -> str:
    from bench.capability import devices_markdown, precisions_markdown, support_markdown
    from bench.execution.accuracy import TOLERANCES
    from bench.execution.loadgen import loadgen_markdown
    from bench.registry import Registry

    lines = [
        "# Results schema",
        "",
        f"Generated by `python -m bench.docs` from `bench/results/schema.py`. Schema version {SCHEMA_VERSION}.",
        "",
        "Layout: `RESULTS/cases/date=YYYY-MM-DD/run_id=ID/NNNN-*.parquet`, one file per case, written",
        "atomically (temp file, fsync, rename) as each case finishes; once the run is complete they are merged",
        "into `compacted.parquet` in the same folder (where it exists, readers ignore the other files there).",
        "`RESULTS/runs/run_id=ID/run.parquet` holds the environment, captured once per run and joined on `run_id`.",
        "Two files at the root are bench's own caches, rebuilt from those files as runs complete and never the",
        "only copy of anything: `_summary.parquet` (which run holds each case key's latest row) and",
        "`_runs.parquet` (the complete runs' rows of the runs table in one file).",
        "",
    ]
    lines += _table("Cases", CASE_COLUMNS) + _table("Runs", RUN_COLUMNS)
    lines += ["`RESULTS/ops/date=YYYY-MM-DD/run_id=ID/NNNN-*.parquet`: a profiled case's nodes (`--profile`), written",
              "beside its case file.", "", *_table("Ops", OP_COLUMNS)]
    lines += ["## Accuracy tolerances", "", "| precision | min cosine | max normalized error |", "|---|---|---|"]
    lines += [f"| {p} | {t.min_cosine} | {t.max_normalized_error} |" for p, t in TOLERANCES.items()]
    specs = Registry.builtin().specs  # not third-party plugins installed here
    lines += ["", *precisions_markdown(specs), *support_markdown(specs), *devices_markdown(specs)]
    lines += ["", *loadgen_markdown()]
    return "\n".join(lines).rstrip("\n") + "\n"
