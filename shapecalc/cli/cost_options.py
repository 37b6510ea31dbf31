"""``summary``'s cost options: ``--as``, ``--compare-tools``, ``--count``, ``--percent``.

Kept apart from ``summary.py``: the options are declared here (one decorator) and
turned into the views of :mod:`shapecalc.render_costs`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from ..conventions import CONVENTIONS, EXTRA_TERMS, parse_terms


class TermsParam(click.ParamType):
    """A comma-separated list of ``--count`` terms: ``bias,norm,act,pool,add``."""

    name = "terms"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, ...]:
        if isinstance(value, tuple):
            return value
        try:
            return parse_terms(str(value))
        except ValueError as err:
            self.fail(str(err), param, ctx)


def cost_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The cost options, added to a command (they arrive as keyword arguments)."""
    options = [
        click.option(
            "--as",
            "as_tools",
            type=click.Choice(list(CONVENTIONS)),
            multiple=True,
            help="Show, next to our MACs, what that tool reports, per layer and in total (repeatable).",
        ),
        click.option(
            "--compare-tools",
            is_flag=True,
            help="A table of every tool's total with the reason it differs from our MACs.",
        ),
        click.option(
            "--count",
            type=TermsParam(),
            default="",
            help="Add terms to our MACs: " + ", ".join(EXTRA_TERMS) + " (comma-separated; docs/conventions.md).",
        ),
        click.option(
            "--percent",
            is_flag=True,
            help="Share of parameters and MACs per row (%% columns) and a breakdown by layer type.",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn
