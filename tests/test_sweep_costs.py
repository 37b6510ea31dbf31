"""``summary --sweep`` with the cost options (issue 10's leftover): each applies to every variant's
totals or says, in a note, why it does not."""

from __future__ import annotations

import csv
import json

from click.testing import CliRunner

from shapecalc.analysis import Analysis, analyse
from shapecalc.cli import cli
from shapecalc.conventions import CONVENTIONS, reproduce, with_terms
from shapecalc.shipped import resolve
from shapecalc.spec import load
from shapecalc.training import training_memory

SPEC = "simple_cnn_params"


def _variant(k: int) -> Analysis:
    return analyse(load(resolve(SPEC), params={"k": k}))


def test_sweep_cost_columns_equal_each_variant() -> None:
    args = ["summary", SPEC, "--sweep", "k=3,5", "--no-verify", "--format", "csv"]
    result = CliRunner().invoke(cli, [*args, "--as", "thop", "--count", "bias,norm", "--train", "--optimizer", "sgd"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(result.stdout.splitlines()))
    for k, row in zip((3, 5), rows, strict=True):
        a = _variant(k)
        assert int(row["macs"]) == a.totals.macs
        assert int(row["MACs+bias+norm"]) == with_terms(a, ("bias", "norm")).total
        assert int(row["thop"]) == reproduce(a, "thop").total
        assert int(row["train peak (sgd)"]) == training_memory(a, "sgd").peak_bytes
    # simple_cnn at k=3 is the shipped SimpleCNN: thop's figure as bench/rivals.json holds it
    assert rows[0]["thop"] == "11078144"
    assert "--train with --sweep: the estimated peak of a training step (sgd), not measured" in result.stderr


def test_sweep_compare_tools_is_a_column_per_tool() -> None:
    result = CliRunner().invoke(
        cli, ["summary", SPEC, "--sweep", "k=3", "--no-verify", "--format", "json", "--compare-tools"]
    )
    assert result.exit_code == 0, result.output
    variant = json.loads(result.stdout)["variants"][0]
    assert {tool: variant[tool] for tool in CONVENTIONS} == {
        tool: reproduce(_variant(3), tool).total for tool in CONVENTIONS
    }


def test_sweep_notes_the_per_layer_options() -> None:
    result = CliRunner().invoke(cli, ["summary", SPEC, "--sweep", "k=3,5", "--no-verify", "--depth", "1", "--percent"])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "--depth is not used with --sweep: the comparison has one row per variant (its totals)",
        "--percent is not used with --sweep: shares are per layer; run one variant with --set",
    ]


def test_csv_and_markdown_say_which_panels_they_leave_out() -> None:
    """The panels of --train, --percent, --as totals are not table rows: csv and markdown say so."""
    args = ["summary", "lenet5", "--no-verify", "--train", "--percent", "--format"]
    for fmt in ("csv", "markdown"):
        result = CliRunner().invoke(cli, [*args, fmt])
        assert result.exit_code == 0, result.output
        assert result.stderr.splitlines()[-1] == (
            f'--format {fmt} has the table only; "By layer type", "Training step (float32, batch 1)":'
            " with --format table or json"
        )
