"""Hypothesis strategies for hostile input: mutated specs and hostile command-line values.

Used by ``tests/test_fuzz.py`` (a small budget, derandomised in CI) and by
``bench/fuzz.py`` (a longer, random run). A mutation starts from a real spec (the
shipped architectures and a small one) and does what an outside campaign did: swaps a
value for a hostile one (non-finite, huge, markup, aliases, wrong types), repeats a layer
absurdly, duplicates, deletes or cuts lines, inserts tabs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent

SMALL = """\
name: small
input: [3, 16, 16]
blocks:
  unit:
    params: {c: 8}
    layers:
      - conv2d: {out_channels: $c, kernel_size: 3, padding: 1}
      - batchnorm2d
layers:
  - unit: {c: 8, repeat: 2}
  - residual:
      body: [relu, conv2d: {out_channels: 8, kernel_size: 3, padding: 1}]
  - concat: [[identity], [maxpool2d: {kernel_size: 3, stride: 1, padding: 1}]]
  - groupnorm: {num_groups: 4}
  - upsample: {scale_factor: 2.0}
  - adaptive_avgpool2d: {output_size: [null, 1]}
  - flatten
  - linear: {out_features: 10}
expect: {output: [10], params: 0}
"""


#: the version-2 constructs: spec params and $names, gate, split, trainable, v2 layer types
SMALL_V2 = """\
name: small_v2
input: [8, 16, 16]
params: {c: 8, k: 3, n: 2}
blocks:
  se:
    params: {r: 2}
    layers:
      - gate:
          body: [adaptive_avgpool2d: {output_size: 1}, conv2d: {out_channels: $r, kernel_size: 1}, relu,
                 conv2d: {out_channels: $c, kernel_size: 1}, sigmoid]
layers:
  - conv2d: {out_channels: $c, kernel_size: $k, padding: '$k // 2', trainable: false}
  - se: {r: 2, repeat: $n}
  - split: {sizes: [4, 4], branches: [[relu], [conv2d: {out_channels: 4, kernel_size: 1}]]}
  - channel_shuffle: {groups: 2}
  - pixel_unshuffle: {downscale_factor: 2}
  - layernorm2d
  - local_response_norm: {size: 3}
  - hardtanh: {min_val: -.inf, max_val: 2.0}
  - stochastic_depth: {p: 0.1, mode: row}
  - flatten
  - linear: {out_features: 10}
"""


def base_specs() -> list[str]:
    """The texts mutations start from: small specs using most constructs (v2's too), and the shipped ones."""
    shipped = sorted((ROOT / "architectures").glob("*.yaml"))
    return [SMALL, SMALL_V2, *(p.read_text(encoding="utf-8") for p in shipped[:12])]


#: YAML values an attacker writes where a number, a name or a list belongs
HOSTILE_VALUES = [
    "0", "-1", "1000000000000", "9223372036854775808", "4611686018427387904", "99999999999999999999999",
    ".inf", "-.inf", ".nan", "1.0e+308", "-1.0e+308", "1.0e-320", "1e5", "3.5", "true", "null", "~",
    "[]", "{}", "[null, 1]", "[1, 2, 3, 4, 5]", "[[[[1]]]]", "'same'", "'[/x]'", "'[bold red]X[/bold red]'",
    "*nope", "&a 3", "!!python/object/apply:os.system ['true']", "999999", "'$c * 1000000'", "$c", "'\\t'",
    "'" + "x" * 300 + "'", "\t3", "{repeat: 999999}",
    # version 2: expressions, parameters, frozen layers, structures
    "'$c // 0'", "'$nope'", "'$c * $c * $c * $c * $c * $c'", "'" + "(" * 60 + "$c" + ")" * 60 + "'",
    "'$k - $k'", "$n", "'$c' ", "false", "'yes'", "{body: [relu]}", "[[relu], [relu]]", "{sizes: [1, 99]}",
]  # fmt: skip

#: what an attacker writes as a spec's ``module:`` (check imports only what it names)
HOSTILE_MODULES = ["'missing.py:Net'", "'os:path'", "'json:loads'", "':'", "'x.py:'", "'[/x].py:Net'", "3", "[]"]

_NUMBER = re.compile(r"(?<![\w.$])\d+(?:\.\d+)?(?![\w.])")
_VALUE = re.compile(r"(?<=: )[^,\]\}\n#]+")


def _replace_nth(pattern: re.Pattern[str], text: str, n: int, new: str) -> str:
    matches = list(pattern.finditer(text))
    if not matches:
        return text
    m = matches[n % len(matches)]
    return text[: m.start()] + new + text[m.end() :]


#: the mutations: the outside campaign's, then version 2's constructs
KINDS = ["number", "value", "repeat", "dup", "delete", "cut", "tab", "name", "alias"]
KINDS += ["params", "trainable", "gate", "split", "module"]
#: what a gate's body becomes
GATE_BODIES = ["[relu]", "[]", "[flatten]", "[conv2d: {out_channels: 1, kernel_size: 1}]", "relu", "{body: [sigmoid]}"]


@st.composite
def mutated_specs(draw: Any) -> str:
    """A real spec with one to three hostile mutations."""
    text: str = draw(st.sampled_from(base_specs()))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(KINDS))
        n = draw(st.integers(0, 10_000))
        lines = text.split("\n")
        if kind == "number":
            text = _replace_nth(_NUMBER, text, n, draw(st.sampled_from(HOSTILE_VALUES)))
        elif kind == "value":
            text = _replace_nth(_VALUE, text, n, draw(st.sampled_from(HOSTILE_VALUES)))
        elif kind == "repeat":
            count = draw(st.sampled_from([2, 1000, 20_001, 999_999, 10**12]))
            text = text.replace("layers:\n", f"layers:\n  - relu: {{repeat: {count}}}\n", 1)
        elif kind == "dup" and lines:
            i = n % len(lines)
            text = "\n".join(lines[: i + 1] + lines[i:])
        elif kind == "delete" and lines:
            i = n % len(lines)
            text = "\n".join(lines[:i] + lines[i + 1 :])
        elif kind == "cut":
            text = text[: n % (len(text) + 1)]
        elif kind == "tab":
            i = n % (len(text) + 1)
            text = text[:i] + "\t" + text[i:]
        elif kind == "name":
            text = f"name: {draw(st.sampled_from(HOSTILE_VALUES))}\n" + text
        elif kind == "params":  # a spec parameter with a hostile default, used by a layer
            value = draw(st.sampled_from(HOSTILE_VALUES))
            text = re.sub(r"^params:.*$", "", text, count=1, flags=re.M)
            text = f"params: {{c: {value}, k: 3, n: 2}}\n" + text.replace("out_channels: 8", "out_channels: $c", 1)
        elif kind == "trainable":
            value = draw(st.sampled_from(HOSTILE_VALUES))
            text = text.replace("{out_channels:", f"{{trainable: {value}, out_channels:", 1)
        elif kind == "gate":
            body = draw(st.sampled_from(GATE_BODIES))
            text = text.replace("layers:\n", f"layers:\n  - gate: {{body: {body}}}\n", 1)
        elif kind == "split":
            sizes = draw(st.sampled_from(["[1, 2]", "[0, 3]", "[-1, 4]", "[]", "[1000000000000, 1]", "$c", "[1.5, 2]"]))
            text = text.replace("layers:\n", f"layers:\n  - split: {{sizes: {sizes}, branches: [[relu], []]}}\n", 1)
        elif kind == "module":
            text += f"\nmodule: {draw(st.sampled_from(HOSTILE_MODULES))}\n"
        else:
            text = text.replace("input: ", "input: &in ", 1) + "\nexpect: {output: *in}\n"
    return text


#: text an attacker passes as a command-line value
_CLI_TEXT = st.one_of(
    st.sampled_from([
        "²", "٣", "1e3", "10^20", "9" * 30, "9" * 5000, "-1", "0", "3x", "x3", "3x3x3x3", ",", "1,2,3", "same",
        "nan", "inf", " 3 ", "3,", "1_000", "+3", "0x10", "", "3\x00", "[3,3]", "[" * 50,
    ]),
    st.text(alphabet="0123456789x,-+ ²٣.e", max_size=12),
)  # fmt: skip


@st.composite
def cli_invocations(draw: Any) -> list[str]:
    """Arguments of one ``shapecalc`` invocation with hostile values where numbers belong."""
    a, b, c = draw(_CLI_TEXT), draw(_CLI_TEXT), draw(_CLI_TEXT)
    command = draw(st.sampled_from(["out", "solve", "layer", "convolve", "summary", "set", "sweep"]))
    params_spec = str(ROOT / "architectures" / "simple_cnn_params.yaml")
    if command == "set":  # a spec parameter set from the command line, as YAML text
        return ["check", "--set", f"k={a}", params_spec]
    if command == "sweep":
        return ["summary", params_spec, "--no-verify", "--sweep", f"k={a},{b}"]
    if command == "out":
        return ["out", "--in", a, "-k", b, "-s", c or "1"]
    if command == "solve":
        return ["solve", "--in", a, "--out", b, "-k", c, *draw(st.sampled_from([[], ["--transpose"], ["--pool"]]))]
    if command == "layer":
        return ["layer", "conv2d", f"out_channels={a}", f"kernel_size={b}", "--input", c]
    if command == "convolve":
        return ["convolve", "square", "box", "-p", a, "-s", b or "1", "--no-verify"]
    return ["summary", str(ROOT / "architectures" / "simple_cnn.yaml"), "--no-verify", "--input", a, "--batch", b]
