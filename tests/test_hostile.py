"""Hostile and broken specs: one located line each, exit code 1, no traceback, nothing executed.

The static corpus is ``tests/fixtures/hostile/``; specs whose payload must point
into ``tmp_path`` (a marker file that code execution would create) are written
by the tests. Speed is not asserted here (bench/ measures it); every case is
bounded by the loader's limits (aliases, layers, nesting, int literal length).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from shapecalc.cli.check import main

CORPUS = Path(__file__).parent / "fixtures" / "hostile"

DEEP_PATH = "layers[0]" + ".sequential.layers[0]" * 64 + " (sequential)"

#: file -> the exact located line ``shapecalc check`` prints for it (all fail with exit code 1)
EXPECTED = {
    "empty.yaml": "1:1: error: the file is empty: a spec needs at least 'input' and 'layers'  [SC001]",
    "not_a_mapping.yaml": "1:1: error: a spec is a mapping with 'input' and 'layers', not a list  [SC001]",
    "yaml_syntax.yaml": "5:1: error: YAML syntax error: did not find expected ',' or '}'"
    " (while parsing a flow mapping at line 3)  [SC001]",
    "unknown_layer.yaml": "4:5: error: layers[1]: unknown layer type 'conv2e' (did you mean 'conv2d'?)  [SC001]",
    "missing_input.yaml": "1:1: error: the spec has no 'input': give the shape of one sample,"
    " e.g. input: [3, 32, 32]  [SC001]",
    "negative_size.yaml": "1:12: error: input[1] must be a positive int, not -32  [SC001]",
    "zero_size.yaml": "3:28: error: layers[0] (conv2d): conv2d out_channels must be a positive int, not 0  [SC001]",
    "float_size.yaml": "3:44: error: layers[0] (conv2d): conv2d kernel_size must be a positive int"
    " or a list of 2, not 3.5  [SC001]",
    "bool_size.yaml": "3:44: error: layers[0] (conv2d): conv2d kernel_size must be a positive int"
    " or a list of 2, not true  [SC001]",
    "string_size.yaml": "3:28: error: layers[0] (conv2d): conv2d out_channels must be a positive int,"
    " not 'eight'  [SC001]",
    "collapsed_output.yaml": "4:30: error: layers[0]#5 (maxpool2d): kernel 2 is larger than padded input 1"
    " (input 1 + padding 0) (axis 0)  [SC002]",
    "linear_flatten_mismatch.yaml": "6:27: error: layers[3] (linear): in_features is 4096 but the input has"
    " 2048 features  [SC002]",
    "residual_mismatch.yaml": "3:5: error: layers[0] (residual): residual branches disagree: body gives"
    " [32, 16, 16], the identity shortcut gives [16, 32, 32]; a shortcut"
    " [conv2d: {out_channels: 32, kernel_size: 1, stride: 2}] would fit  [SC002]",
    "concat_mismatch.yaml": "3:5: error: layers[0] (concat): concat branches must agree on every axis but"
    " channels: branch 0 gives [8, 32, 32], branch 1 gives [8, 30, 30]  [SC002]",
    "block_cycle.yaml": "6:14: error: block cycle: a -> b -> a  [SC001]",
    "block_missing_param.yaml": "9:5: error: layers[0] (conv_bn): block 'conv_bn' needs the parameter out"
    " (no default)  [SC001]",
    "division_by_zero.yaml": "8:5: error: layers[0].down.layers[0] (conv2d): division by zero in '3 // $s'"
    " (3 // 0) (in block 'down' defined at line 3)  [SC001]",
    "alias_bomb.yaml": "8:36: error: the document expands to more than 1,000,000 nodes through YAML aliases"
    " (at *e)  [SC001]",
    "absurd_repeat.yaml": "3:20: error: layers[0] (relu): the spec expands to more than 10,000 layers and structures"
    " (repeat: 1,000,000,000,000)  [SC001]",
    "deep_yaml.yaml": "2:1008: error: YAML syntax error: exceeded maximum nesting depth"
    " (while increasing flow level at line 2)  [SC001]",
    "deep_structures.yaml": f"131:389: error: {DEEP_PATH}: layers nest more than 64 levels deep"
    " (structures and block uses)  [SC001]",
    "huge_int.yaml": "3:28: error: the number 99999999999999999999... is too large (5000 characters)  [SC001]",
    "non_utf8.yaml": "1:1: error: file is not UTF-8 text (byte 0xe9 at offset 29)  [SC001]",
    "duplicate_keys.yaml": "3:47: error: duplicate key 'kernel_size' (first at line 3)  [SC001]",
    "expect_typo.yaml": "6:3: error: unknown key 'parmas' in expect (did you mean 'params'?);"
    " it takes output, params, trainable, buffers, macs, receptive_field  [SC001]",
    # issue 14, round 2: the bounds that keep check of any file under 1 MB under a second
    "dense_yaml.yaml": "3:30000: error: the YAML holds more than 20,000 values, lists and mappings counting twice"
    " (at most one per 3 characters of the file): a spec this dense is not a network  [SC001]",
    "block_definitions.yaml": "10005:9: error: blocks.b.layers: the blocks define more than 10,000 layers and"
    " structures  [SC001]",
    "too_many_params.yaml": "1003:3: error: the spec declares 1,001 parameters, more than 1,000  [SC001]",
    "huge_mapping.yaml": "3:98905: error: a mapping holds more than 10,000 keys: no part of a spec needs that many"
    "  [SC001]",
    "long_expression.yaml": "4:26: error: layers[0] (conv2d): bad expression '"
    + " + ".join(["$c"] * 40)
    + " + '... (1,002 characters): longer than an expression may be (1,000 characters)  [SC001]",
    # a 3,000-item list quoted in a message: cut at 12 items, the fix named without it
    "huge_quoted_list.yaml": "3:18: error: layers[0] (split): split sizes [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,"
    " ... (3,000 items)] sum to 3000, but the input [9000, 8, 8] has 9000 channels; a last size of 6001"
    " instead of 1 would sum to 9000  [SC002]",
}


def test_corpus_is_complete() -> None:
    assert sorted(p.name for p in CORPUS.iterdir()) == sorted(EXPECTED)


def check(capsys: pytest.CaptureFixture[str], *files: str) -> tuple[int, list[str], str]:
    code = main(list(files))
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_file(name: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(CORPUS)
    code, lines, err = check(capsys, name)
    assert code == 1
    assert lines == [f"{name}:{EXPECTED[name]}"]
    assert err == "shapecalc check: 1 file checked, 1 failed: 1 error, 0 warnings\n"


# --------------------------------------------------------------------------- payloads that would run code


def python_tag_specs(marker: Path) -> dict[str, str]:
    command = f"touch {marker}"
    return {
        "tag_apply.yaml": f'input: !!python/object/apply:os.system ["{command}"]\nlayers: [relu]\n',
        "tag_in_layers.yaml": (
            "input: [3, 8, 8]\nlayers:\n"
            f"  - !!python/object/apply:subprocess.check_call {{args: [[sh, -c, '{command}']]}}\n"
        ),
    }


def import_expression_spec(marker: Path) -> str:
    return (
        "input: [3, 8, 8]\nblocks:\n  evil:\n    params: {k: 3}\n    layers:\n"
        f"      - conv2d: {{out_channels: 8, kernel_size: \"$__import__('os').system('touch {marker}')\"}}\n"
        "layers:\n  - evil\n"
    )


EXECUTED_EXPECTED = {
    "tag_apply.yaml": "1:8: error: the tag !!python/object/apply:os.system is not allowed on a list:"
    " a spec is plain YAML (no tags)  [SC001]",
    "tag_in_layers.yaml": "3:5: error: the tag !!python/object/apply:subprocess.check_call is not allowed on"
    " a mapping: a spec is plain YAML (no tags)  [SC001]",
}


def test_payloads_are_live(tmp_path: Path) -> None:
    """The payloads do run code under an unsafe loader / eval: the tests below can fail."""
    marker = tmp_path / "pwned"
    for text in python_tag_specs(marker).values():
        yaml.unsafe_load(text)
        assert marker.exists()
        marker.unlink()
    expression = yaml.safe_load(import_expression_spec(marker))["blocks"]["evil"]["layers"][0]["conv2d"]
    eval(expression["kernel_size"][1:])  # what a loader that evaluates expressions would do
    assert marker.exists()


def test_python_tags_execute_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "pwned"
    monkeypatch.chdir(tmp_path)
    for name, text in python_tag_specs(marker).items():
        (tmp_path / name).write_text(text)
        assert check(capsys, name)[:2] == (1, [f"{name}:{EXECUTED_EXPECTED[name]}"])
    assert not marker.exists()


def test_import_expression_executes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "pwned"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "evil.yaml").write_text(import_expression_spec(marker))
    code, lines, _ = check(capsys, "evil.yaml")
    assert code == 1
    assert lines == [
        "evil.yaml:6:48: error: blocks.evil.layers[0] (conv2d): bad expression"
        f" \"$__import__('os').system('touch {marker}')\": unexpected \"'\" (only + - * // % and ()) at position 13"
        "  [SC001]"
    ]
    assert not marker.exists()


def test_directory_and_missing_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "specs.yaml").mkdir()  # a directory named like a spec
    assert check(capsys, "specs.yaml", "gone.yaml") == (
        1,
        [
            "specs.yaml:1:1: error: is a directory, not a spec file  [SC001]",
            "gone.yaml:1:1: error: no such file  [SC001]",
        ],
        "shapecalc check: 2 files checked, 2 failed: 2 errors, 0 warnings\n",
    )


def test_device_file_is_not_read(capsys: pytest.CaptureFixture[str]) -> None:
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero here")
    # reading it would never end
    assert check(capsys, "/dev/zero")[:2] == (
        1,
        ["/dev/zero:1:1: error: is not a regular file (a device, FIFO or socket)  [SC001]"],
    )


# --------------------------------------------------------------------------- the real entry point, once


def _entry_point() -> list[str]:
    script = Path(sys.executable).parent / "shapecalc"
    return [str(script)] if script.exists() else [sys.executable, "-m", "shapecalc"]


def test_whole_corpus_in_one_process(tmp_path: Path) -> None:
    """``shapecalc check`` on every hostile file at once: one line each, in order, and no traceback."""
    marker = tmp_path / "pwned"
    work = tmp_path / "corpus"
    shutil.copytree(CORPUS, work)
    expected = dict(EXPECTED)
    for name, text in python_tag_specs(marker).items():
        (work / name).write_text(text)
        expected[name] = EXECUTED_EXPECTED[name]
    (work / "a_directory").mkdir()
    expected["a_directory"] = "1:1: error: is a directory, not a spec file  [SC001]"
    expected["missing.yaml"] = "1:1: error: no such file  [SC001]"
    names = sorted(expected)
    proc = subprocess.run(
        [*_entry_point(), "check", *names],
        cwd=work,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == [f"{name}:{expected[name]}" for name in names]
    n = len(names)
    assert proc.stderr == f"shapecalc check: {n} files checked, {n} failed: {n} errors, 0 warnings\n"
    assert not marker.exists()


def test_loader_broken_fixtures_in_one_process() -> None:
    """The loader's broken specs (their messages are pinned in the loader's tests): one located error each."""
    broken = Path(__file__).parent / "fixtures" / "specs" / "broken"
    if not broken.is_dir():
        pytest.skip("the loader's broken fixtures are not in this checkout")
    names = sorted(p.name for p in broken.iterdir() if p.is_file())
    proc = subprocess.run([*_entry_point(), "check", *names], cwd=broken, capture_output=True, text=True, check=False)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split(":", 1)[0] for line in lines] == names
    pattern = re.compile(r"^[\w.]+:\d+:\d+: error: .+  \[SC00[12]\]$")
    assert [line for line in lines if not pattern.match(line)] == []
    n = len(names)
    assert proc.stderr == f"shapecalc check: {n} files checked, {n} failed: {n} errors, 0 warnings\n"
