"""``shapecalc summary`` through click's CliRunner: exit codes, stdout, stderr."""

from __future__ import annotations

import importlib.util
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from specs import TINY

from shapecalc.cli import cli


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def run(*args: str) -> object:
    return CliRunner().invoke(cli, list(args))


def test_table_without_verification(spec_file: Path) -> None:
    result = CliRunner().invoke(cli, ["summary", str(spec_file), "--no-verify"])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    out = result.stdout
    assert "tiny  input [3, 16, 16]  batch 1  (shapes per sample)" in out
    assert "│ 6 │ linear      │ 512 -> 10 │ [10]        │  5,130 │  5,120 │ 16 /2 │" in out
    assert "Parameters" in out and "5,362" in out  # 216 + 16 + 5,130


def test_no_torch_says_so_in_one_line(spec_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    result = CliRunner().invoke(cli, ["summary", str(spec_file)])
    assert result.exit_code == 0
    assert result.stderr == "not verified: torch is not installed (pip install 'shapecalc-cnn[torch]')\n"


def test_json_is_the_documented_schema(spec_file: Path) -> None:
    result = CliRunner().invoke(cli, ["summary", str(spec_file), "--no-verify", "--format", "json", "--batch", "2"])
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["name"] == "tiny"
    assert doc["input"] == [3, 16, 16] and doc["output"] == [10]
    assert doc["batch"] == 2
    assert doc["totals"]["params"] == 5362
    assert doc["totals"]["macs"] == 216 * 256 + 5120
    assert [layer["type"] for layer in doc["layers"]] == [
        "conv2d", "batchnorm2d", "relu", "maxpool2d", "flatten", "linear",
    ]  # fmt: skip
    assert doc["verification"] is None


def test_input_override_and_csv(spec_file: Path) -> None:
    result = CliRunner().invoke(
        cli, ["summary", str(spec_file), "--no-verify", "--format", "csv", "--input", "3x32x32"]
    )
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[1].startswith('1,layers[0],conv2d,,3x3 p1,"[8, 32, 32]",216,')
    # the flatten now gives 8*16*16 = 2,048 features: linear 2048 -> 10
    assert lines[-1].startswith("6,layers[5],linear,,2048 -> 10,[10],20490,")


def test_markdown(spec_file: Path) -> None:
    result = CliRunner().invoke(cli, ["summary", str(spec_file), "--no-verify", "--format", "markdown"])
    assert result.exit_code == 0
    assert "| 6 | linear | 512 -> 10 | [10] | 5,130 | 5,120 | 16 /2 |" in result.stdout
    # the peak: the input (3*16*16 floats) and batchnorm's input and output (2 x 8*16*16):
    # 4,864 floats = 19,456 bytes
    assert "| &nbsp;&nbsp;inference peak | 19.00 KiB | most tensors alive at once, input included |" in result.stdout


def test_broken_spec_is_one_located_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(TINY.replace("linear: {out_features: 10}", "linear: {in_features: 4096, out_features: 10}"))
    result = CliRunner().invoke(cli, ["summary", str(path), "--no-verify"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == f"{path}:9:27: layers[5] (linear): in_features is 4096 but the input has 512 features\n"


def test_missing_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["summary", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.stderr.startswith(str(tmp_path / "nope.yaml"))


def test_usage_error_is_exit_2(spec_file: Path) -> None:
    result = CliRunner().invoke(cli, ["summary", str(spec_file), "--dtype", "int8"])
    assert result.exit_code == 2
    assert "Invalid value for '--dtype'" in result.stderr


def test_verified_with_torch(spec_file: Path) -> None:
    pytest.importorskip("torch")
    result = CliRunner().invoke(cli, ["summary", str(spec_file), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "✓" in result.stdout
    assert "✗" not in result.stdout
    assert "verified" in result.stderr and "torch" in result.stderr


def test_spec_from_stdin(spec_file: Path) -> None:
    result = CliRunner().invoke(cli, ["summary", "-", "--no-verify", "--format", "json"], input=TINY)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert (doc["file"], doc["totals"]["params"]) == ("<stdin>", 5362)
    broken = CliRunner().invoke(cli, ["summary", "-", "--no-verify"], input=TINY.replace("layers:", "layerz:"))
    assert broken.exit_code == 1
    assert broken.stderr.startswith("<stdin>:3:1: ")
    not_utf8 = CliRunner().invoke(cli, ["summary", "-", "--no-verify"], input=b"input: [3]\xff\n")
    assert not_utf8.exit_code == 1
    assert not_utf8.stderr == "<stdin>:1:1: file is not UTF-8 text (byte 0xff at offset 10)\n"


class _Counting(io.BytesIO):
    """An endless stream of spaces that counts what is read from it."""

    def __init__(self) -> None:
        super().__init__()
        self.taken = 0

    def read(self, n: int | None = -1) -> bytes:
        assert n is not None and n >= 0, "an unbounded read of standard input"
        self.taken += n
        return b" " * n


def test_stdin_is_capped_like_a_spec_file(monkeypatch: pytest.MonkeyPatch) -> None:
    from shapecalc import reader

    # a spec of exactly the limit is read (and is refused for what it says, not its size)
    monkeypatch.setattr(reader, "MAX_SPEC_BYTES", 64)
    at_limit = TINY.splitlines(keepends=True)[0].ljust(64).encode()
    stream = _Counting()
    assert reader.read_stream(io.BytesIO(at_limit), max_bytes=64) == at_limit.decode()
    # an endless stream: max + 1 bytes are read, then one line
    with pytest.raises(reader.SpecError, match=r"^<stdin>: more than the 64 bytes allowed for a spec file$"):
        reader.read_stream(stream, max_bytes=64)
    assert stream.taken == 65
    # through the CLI, with the real limit: 8 MiB + 1 byte of stdin
    monkeypatch.undo()
    big = b"#" * (reader.MAX_SPEC_BYTES + 1)
    result = CliRunner().invoke(cli, ["summary", "-", "--no-verify"], input=big)
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == "<stdin>: more than the 8,388,608 bytes allowed for a spec file\n"


def test_an_extra_leading_axis_is_called_a_batch_axis(spec_file: Path) -> None:
    result = CliRunner().invoke(cli, ["summary", str(spec_file), "--no-verify", "--input", "1x3x16x16"])
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == "--input 1x3x16x16: that looks like a batch axis; use --input 3x16x16 --batch 1\n"


def test_flags_that_do_nothing_say_so(spec_file: Path) -> None:
    bogus = CliRunner().invoke(cli, ["summary", str(spec_file), "--no-verify", "--device", "bogus"])
    assert bogus.exit_code == 2
    assert "unknown device 'bogus': choose auto, cpu, cuda, cuda:N, mps or meta" in bogus.stderr
    unused = CliRunner().invoke(cli, ["summary", str(spec_file), "--no-verify", "--device", "cpu", "--format", "json",
                                      "--depth", "0"])  # fmt: skip
    assert unused.exit_code == 0
    assert unused.stderr == (
        "note: --device cpu does nothing with --no-verify\n"
        "note: --depth does nothing with --format json (the document has every row)\n"
    )
    check = CliRunner().invoke(cli, ["check", str(spec_file), "--device", "meta"])
    assert check.stderr.splitlines()[0] == "note: --device meta does nothing without --verify"


def test_verify_without_torch_one_rule_for_summary_and_check(spec_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Asked for explicitly, verification that cannot run fails (exit 1) in both commands; summary's default
    (verify when torch is there) only says it did not."""
    import builtins

    real_find, real_import = importlib.util.find_spec, builtins.__import__
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real_find(name, *a))

    def no_torch(name: str, *args: object, **kwargs: object) -> object:
        if name == "torch" or name.startswith("torch."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_torch)
    summary = CliRunner().invoke(cli, ["summary", str(spec_file), "--verify"])
    assert (summary.exit_code, summary.stdout) == (1, "")
    assert summary.stderr == (
        "--verify needs PyTorch, which is not installed: pip install 'shapecalc-cnn[torch]' (or pip install torch)\n"
    )
    check = CliRunner().invoke(cli, ["check", str(spec_file), "--verify"])
    assert check.exit_code == 1
    assert "needs PyTorch, which is not installed: pip install 'shapecalc-cnn[torch]'" in check.stdout
    default = CliRunner().invoke(cli, ["summary", str(spec_file)])
    assert default.exit_code == 0
