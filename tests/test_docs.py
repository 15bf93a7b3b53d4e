"""The docs that are made from the code stay current, and the one-page map names every module of the core."""

from __future__ import annotations

import re
from pathlib import Path

from bench.docs import documented_runners, readme_with_runner_table, runner_table
from bench.registry import Registry
from bench.results.schema import results_markdown

ROOT = Path(__file__).resolve().parent.parent
STALE = "stale: run python -m bench.docs"


def test_results_doc_is_current():
    assert (ROOT / "docs" / "RESULTS.md").read_text() == results_markdown(), STALE


def test_readme_runner_table_is_current_and_names_every_builtin_runner():
    readme = (ROOT / "README.md").read_text()
    specs = documented_runners()
    assert readme == readme_with_runner_table(readme, specs), STALE
    table = "\n".join(runner_table(specs))
    for name, spec in specs.items():
        assert f"| {name} | `{spec.install_hint}` |" in table
        assert all(p in table for p in spec.precisions)


def test_every_runtime_bench_list_runners_shows_has_a_row_in_the_readme(bench_cli):
    """TNN was listed by `bench list runners` (bench.known) and missing from README's table, made from the builtin
    runners alone; both now come from the builtin runners plus the known runtimes."""
    listed = bench_cli("list", "runners")
    assert listed.returncode == 0, listed.stderr
    names = [line.split()[0] for line in listed.stdout.splitlines()[1:] if line.strip()]
    readme = (ROOT / "README.md").read_text()
    assert "tnn" in names and not [n for n in names if f"\n| {n} | `" not in readme]


def test_every_module_of_the_core_is_on_the_map():
    architecture = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    named = set(re.findall(r"`(bench/[\w/]+\.py|bench/\w+/)`", architecture))
    folders = {n for n in named if n.endswith("/")}  # a package named as a whole covers its modules
    core = {str(p.relative_to(ROOT)) for p in (ROOT / "bench").rglob("*.py") if p.stem not in ("__init__", "__main__")}
    missing = {m for m in core if not any(m.startswith(f) for f in folders) and m not in named}
    assert not missing, f"docs/ARCHITECTURE.md does not name {sorted(missing)}"
    ghosts = [n for n in named if not (ROOT / n).exists()]
    assert not ghosts, f"docs/ARCHITECTURE.md names modules that do not exist: {ghosts}"


def test_every_precision_is_explained_has_a_tolerance_and_each_runner_says_how_it_does_it():
    import typing

    from bench.case import PRECISIONS, Precision
    from bench.execution.accuracy import TOLERANCES

    assert set(PRECISIONS) == set(TOLERANCES) == set(typing.get_args(Precision))
    for name, spec in Registry.builtin().specs.items():
        assert set(spec.precisions) <= set(PRECISIONS), name
        missing = [p for p in spec.precisions if p != "fp32" and not spec.precision_notes.get(p)]
        assert not missing, f"{name} does not say how it does {missing} (precision_notes)"
