"""A model's names are the model author's: terminal escapes in a file, node or output name never reach the user's
terminal, summary.md, compare's markdown or a CSV raw (bench.text.printable shows them escaped)."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from bench.text import printable

FAST = str(Path(__file__).parent / "fixtures" / "fast.toml")
EVIL = "\x1b]0;pwned\x07\x1b[2J"  # retitles the terminal window, then clears the screen
RAW = ("\x1b", "\x07", "\x9b", "\u202e")  # ESC, BEL, C1 CSI, right-to-left override


def test_printable_escapes_controls_c1_and_bidi_and_leaves_the_rest():
    assert printable(EVIL) == "\\x1b]0;pwned\\x07\\x1b[2J"
    assert printable("a\x9b2Jb\u202etxt.exe\nc\x7f") == "a\\x9b2Jb\\u202etxt.exe\\x0ac\\x7f"
    assert printable("résumé 模型 conv_1/relu") == "résumé 模型 conv_1/relu"
    assert printable(printable(EVIL)) == printable(EVIL)


def _evil_model(folder: Path) -> Path:
    """A Relu whose file, graph, node and output names carry EVIL; ONNX Runtime runs it as any other."""
    path = folder / f"m{EVIL}.onnx"
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info(f"y{EVIL}", TensorProto.FLOAT, [1, 4])
    node = helper.make_node("Relu", ["x"], [f"y{EVIL}"], name=f"relu{EVIL}")
    onnx.save(helper.make_model(helper.make_graph([node], f"g{EVIL}", [x], [y]),
                                opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def _assert_no_raw_escape(where: str, text: str) -> None:
    raw = [hex(ord(c)) for c in RAW if c in text]
    assert not raw, f"{where} holds raw {raw}: {text[-600:]!r}"


@pytest.mark.slow
def test_a_model_named_with_escapes_never_reaches_a_terminal_or_text_file_raw(bench_cli, tmp_path):
    model = _evil_model(tmp_path)
    outputs = []
    for _ in range(2):  # two runs, for compare
        done = bench_cli("run", "--suite", FAST, "--model", str(model), "--runners", "onnxruntime",
                         "--threads", "1", "--results", "out", "--verbose")
        assert done.returncode == 0, done.stderr[-2000:]
        outputs.append(done)
    assert "m\\x1b]0;pwned\\x07\\x1b[2J/onnxruntime" in outputs[0].stdout  # the name is shown, escaped
    runs = [line.split()[1].rstrip(":") for d in outputs for line in d.stdout.splitlines() if line.startswith("run ")]
    outputs += [bench_cli("coverage", "--results", "out"), bench_cli("report", "--results", "out", "--out", "rep"),
                bench_cli("compare", *runs, "--results", "out")]
    outputs += [bench_cli("run", "--suite", str(tmp_path / f"s{EVIL}.toml")),  # one-line errors naming a file
                bench_cli("run", "--model", str(tmp_path / f"absent{EVIL}.onnx"))]
    codes = [d.returncode for d in outputs[2:]]  # compare: 1 when the second run of a 0.01 ms model was slower
    assert codes[:2] == [0, 0] and codes[2] in (0, 1) and codes[3:] == [2, 2], [d.stderr[-500:] for d in outputs[2:]]
    for done in outputs:
        _assert_no_raw_escape(f"{done.args[3:5]} stdout", done.stdout)
        _assert_no_raw_escape(f"{done.args[3:5]} stderr", done.stderr)
    assert all("\\x1b[2J" in text for text in (outputs[2].stdout, outputs[4].stdout, outputs[-1].stderr))
    summary = (tmp_path / "rep" / "summary.md").read_text()
    assert "m\\x1b]0;pwned\\x07\\x1b[2J" in summary
    _assert_no_raw_escape("summary.md", summary)
    csvs = sorted((tmp_path / "rep").glob("*.csv"))
    assert csvs and any("\\x1b]0;pwned" in f.read_text() for f in csvs)
    for f in csvs:
        _assert_no_raw_escape(f.name, f.read_text())


def test_the_verbose_table_shows_a_name_that_looks_like_rich_markup_as_it_is():
    """A model file named "m[/x].onnx" ended `bench run --verbose` in rich's MarkupError after every case ran."""
    import io

    from rich.console import Console

    from bench.progress import summary_table

    row = {"model": f"m[/x][bold]{EVIL}", "runner": "onnxruntime", "device": "cpu", "precision": "fp32", "batch": 1,
           "threads": 1, "status": "ok", "median_ms": 1.0, "scenario": "latency", "accuracy_ok": True}
    out = io.StringIO()
    Console(file=out, width=300).print(summary_table([row]))
    assert "m[/x][bold]\\x1b]0;pwned\\x07\\x1b[2J" in out.getvalue()
