"""Conversion failures are cached like artifacts: a converter's own refusal or crash once per key, never a deadline,
a kill, or a machine out of memory or disk. The "converters" here are real processes that misbehave on cue."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

import pytest

from bench.cache import sha256_file
from bench.case import Case, InputSpec, ModelRef
from bench.execution import convert
from bench.execution.convert import (
    FAILED_SUFFIX,
    Conversion,
    ConversionFailed,
    ConverterInterrupted,
    cached_artifact,
    forget_failures,
    run_converter,
)

MODEL = ModelRef("m", "/m.onnx", "a" * 64, (InputSpec("x", (1, 4), "float32", -1, 1),))
SEGFAULTS = "import os, signal; print('converting'); os.kill(os.getpid(), signal.SIGSEGV)"
REFUSES = "import sys; sys.exit('Not Support: MyFancyOp')"


def _case(tmp_path: Path) -> Case:
    return Case(model=MODEL, runner="r", implementation="x:Y", device="cpu", precision="fp32", batch=1, threads=1,
                scenario="latency", cache_dir=str(tmp_path))


class Converter:
    """A produce() that runs ``script`` as the converter and counts how often it was asked to."""

    def __init__(self, script: str, timeout_s: float = 30, writes: bool = True) -> None:
        self.script, self.timeout_s, self.writes, self.calls = script, timeout_s, writes, 0

    def __call__(self, folder: Path) -> None:
        self.calls += 1
        run_converter([sys.executable, "-c", self.script], self.timeout_s)
        if self.writes:
            (folder / "model.bin").write_bytes(b"converted")


def _records(cache: Path) -> list[Path]:
    return sorted((cache / "artifacts").glob(f"*/*{FAILED_SUFFIX}"))


@pytest.mark.parametrize("converter", [Converter(SEGFAULTS), Converter(REFUSES), Converter("pass", writes=False)],
                         ids=["crash", "refusal", "exits 0, writes nothing"])
def test_a_refusal_is_cached_and_said_again_without_running_the_converter(tmp_path, converter):
    case, conversion = _case(tmp_path), Conversion("conv", "1.0", {"opt": 1})
    with pytest.raises(ConversionFailed) as first:
        cached_artifact(case, conversion, converter)
    assert not isinstance(first.value, ConverterInterrupted)
    assert converter.calls == 1 and len(_records(tmp_path)) == 1
    with pytest.raises(ConversionFailed) as again:
        cached_artifact(case, conversion, converter)
    assert converter.calls == 1, "the converter ran again for a failure already recorded"
    said = str(again.value)
    assert said.startswith(str(first.value)) and "(cached failure from " in said
    assert f"delete {_records(tmp_path)[0]} or run with --retry-failed" in said


def test_another_option_or_version_tries_again_and_retry_failed_forgets(tmp_path):
    case, converter = _case(tmp_path), Converter(SEGFAULTS)
    for conversion in [Conversion("conv", "1.0", {"opt": 1}), Conversion("conv", "1.0", {"opt": 2}),
                       Conversion("conv", "1.1", {"opt": 1})]:
        with pytest.raises(ConversionFailed):
            cached_artifact(case, conversion, converter)
    assert converter.calls == 3 and len(_records(tmp_path)) == 3
    with pytest.raises(ConversionFailed):  # another model: its own key
        cached_artifact(dataclasses.replace(case, model=dataclasses.replace(MODEL, sha256="b" * 64)),
                        Conversion("conv", "1.0", {"opt": 1}), converter)
    assert converter.calls == 4
    assert forget_failures(tmp_path) == 4 and not _records(tmp_path)
    with pytest.raises(ConversionFailed) as retried:
        cached_artifact(case, Conversion("conv", "1.0", {"opt": 1}), converter)
    assert converter.calls == 5 and "cached" not in str(retried.value)


@pytest.mark.parametrize("script, timeout_s", [
    ("import time; time.sleep(30)", 0.5),  # its deadline
    ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", 30),  # the OOM killer, bench's deadline
    ("import os, signal; os.kill(os.getpid(), signal.SIGTERM)", 30),  # an interrupted run
    ("import sys; sys.exit('write model.bin: [Errno 28] No space left on device')", 30),
    ("import sys; sys.exit('terminate called after throwing an instance of std::bad_alloc')", 30),
], ids=["deadline", "sigkill", "sigterm", "enospc", "bad_alloc"])
def test_a_converter_stopped_by_the_machine_is_tried_again(tmp_path, script, timeout_s):
    case, conversion, converter = _case(tmp_path), Conversion("conv", "1.0", {}), Converter(script, timeout_s)
    for _ in range(2):
        with pytest.raises(ConverterInterrupted):
            cached_artifact(case, conversion, converter)
    assert converter.calls == 2 and not _records(tmp_path)


def test_a_message_about_memory_from_a_converters_own_account_is_not_cached(tmp_path):
    # run_converter_with_account and TVM's in-process compile say the runtime's own words, in a plain ConversionFailed
    def produce(folder: Path) -> None:
        raise ConversionFailed("tvm.compile failed: MemoryError: ")

    with pytest.raises(ConversionFailed):
        cached_artifact(_case(tmp_path), Conversion("conv", "1.0", {}), produce)
    assert not _records(tmp_path)


def test_an_unreadable_record_is_ignored_and_replaced(tmp_path):
    case, conversion, converter = _case(tmp_path), Conversion("conv", "1.0", {}), Converter(REFUSES)
    with pytest.raises(ConversionFailed):
        cached_artifact(case, conversion, converter)
    record = _records(tmp_path)[0]
    record.write_text("{not json")
    with pytest.raises(ConversionFailed) as again:
        cached_artifact(case, conversion, converter)
    assert converter.calls == 2 and "cached" not in str(again.value)
    assert json.loads(record.read_text())["message"] == str(again.value)



def test_an_unchanged_artifact_is_not_hashed_again_and_a_rewritten_one_is_rebuilt(tmp_path, monkeypatch):
    """A case finds its artifact by its files' stat as they were when last verified; a file rewritten in place with
    the same size and its mtime set back is still caught (its ctime moved) and the artifact made again."""
    case, conversion, made = _case(tmp_path), Conversion("conv", "1.0", {}), Converter("pass")
    folder, _ = cached_artifact(case, conversion, made)
    hashed: list[Path] = []
    monkeypatch.setattr(convert, "sha256_file", lambda path: hashed.append(path) or sha256_file(path))
    _, again = cached_artifact(case, conversion, made)
    assert again.cached and made.calls == 1 and hashed == []
    model = folder / "model.bin"
    before = model.stat()
    model.write_bytes(b"corrupted")  # as long as b"converted"
    os.utime(model, ns=(before.st_atime_ns, before.st_mtime_ns))
    _, rebuilt = cached_artifact(case, conversion, made)
    assert not rebuilt.cached and made.calls == 2 and model.read_bytes() == b"converted"
