"""The registry refuses a spec that would only fail mid-run, and never lets two runners share a name silently."""

from __future__ import annotations

import pytest

from bench.plugin import RunnerSpec
from bench.registry import Registry


def spec(**overrides) -> RunnerSpec:
    attrs = {"name": "mine", "distribution": "mine", "module": "mine", "implementation": "mine.runner:Runner",
             "install_hint": "pip install mine"}
    return type("MineSpec", (RunnerSpec,), {**attrs, **overrides})()


def test_a_complete_spec_registers_once_and_clobbers_only_when_asked():
    registry = Registry([spec()])
    with pytest.raises(ValueError, match="already registered"):
        registry.register(spec())
    registry.register(spec(devices=("cpu", "cuda")), clobber=True)
    assert registry.specs["mine"].devices == ("cpu", "cuda")


@pytest.mark.parametrize(("overrides", "needle"), [
    ({"module": ""}, "missing module"),
    ({"implementation": "mine.runner.Runner"}, "is not 'package.module:RunnerClass'"),
    ({"precisions": ("fp32", "fp8")}, "precisions ('fp32', 'fp8'): expected some of fp32, fp16, bf16, int8"),
    ({"scenarios": ()}, "scenarios"),
    ({"devices": ()}, "devices is empty"),
])
def test_an_incomplete_spec_is_refused_naming_what_is_wrong(overrides, needle):
    with pytest.raises(ValueError) as err:
        Registry().register(spec(**overrides))
    assert needle in str(err.value) and "MineSpec" in str(err.value), str(err.value)


def test_a_spec_without_its_class_attributes_is_refused():
    bare = type("BareSpec", (RunnerSpec,), {"name": "bare"})()
    with pytest.raises(ValueError, match="missing distribution, module, implementation, install_hint"):
        Registry().register(bare)


def test_a_runner_is_one_folder_and_one_entry_point():
    """Adding a built-in runner: runners/NAME/ (spec + runner) and one line in pyproject's bench.runners group;
    setup.py packages every folder, the registry, listing, docs and envinfo read the specs."""
    from pathlib import Path

    folders = {p.parent.name for p in (Path(__file__).parent.parent / "runners").glob("*/__init__.py")}
    specs = Registry.builtin().specs
    assert set(specs) == folders
    assert all(type(spec).__module__ == f"bench.runners.{name}" for name, spec in specs.items())


def test_tnn_is_known_not_installable_and_each_of_its_cases_is_an_unavailable_row(cache_dir, bench_cli):
    """fsspec's known_implementations, for runtimes without a build to install: listed with why and where the source
    is, planned like any runner, never run."""
    from bench.contract import Status
    from bench.plan import Overrides, plan
    from bench.suite import Suite

    registry = Registry.default()
    assert "tnn" in registry.specs and "tnn" not in Registry.builtin().specs
    suite = Suite(name="t", models=["tiny_mlp"], runners=["*"], precisions=["fp32", "int8", "int8_weights"],
                  devices=["cpu"], threads=[1], scenarios=["latency"], batch_sizes=[1])
    tnn = {p.case.precision: p for p in plan(suite, "t", Overrides(), registry, cache_dir, build_models=False)
           if p.case.runner == "tnn"}
    for precision in ("fp32", "int8"):
        assert tnn[precision].skip_status == Status.UNAVAILABLE, tnn[precision]
        assert "not installable" in tnn[precision].skip_reason and "https://github.com/Tencent/TNN" in \
            tnn[precision].skip_reason
    assert tnn["int8_weights"].skip_status == Status.UNSUPPORTED  # what TNN never does stays unsupported

    listed = {line.split()[0]: line for line in bench_cli("list", "runners").stdout.splitlines()[1:]}
    assert "not installable" in listed["tnn"] and "no installable build on PyPI, Debian or npm" in listed["tnn"]
    assert "source: https://github.com/Tencent/TNN" in listed["tnn"]


def test_a_runner_of_a_known_name_takes_the_known_entrys_place():
    from bench.known import KNOWN

    registry = Registry([spec(name="tnn")])
    registry.add_known(KNOWN)
    assert registry.specs["tnn"].installable and registry.specs["tnn"].implementation == "mine.runner:Runner"
