"""Values: a YAML value as plain Python, with ``$`` expressions evaluated in a scope.

Also the small predicates and phrases the loader's messages share.
"""

from __future__ import annotations

from typing import Any, TypeGuard

from ..errors import Location, SpecError, show_text
from . import expr as X
from .scope import Scope, fail, located
from .yamlnodes import YMap, YNode, YScalar, YSeq, kind

_MISSING: Any = object()


class Values:
    """Evaluates values; parses each distinct expression text once (keyed by the text)."""

    __slots__ = ("exprs",)

    def __init__(self) -> None:
        self.exprs: dict[str, X.Expr] = {}

    def value(self, node: YNode, path: str, sc: Scope) -> Any:
        """A YAML value as plain Python (lists, dicts), with ``$`` expressions evaluated."""
        if isinstance(node, YScalar):
            v = node.value
            if isinstance(v, str) and X.has_dollar(v):
                return self.evaluate(v, node.loc, path, sc)
            return v
        memo = sc.bind.values
        cached = memo.get(node, _MISSING)
        if cached is not _MISSING:
            return cached
        out: Any
        if isinstance(node, YSeq):
            out = [self.value(item, path, sc) for item in node.items]
        else:
            assert isinstance(node, YMap)
            out = {k: self.value(item, path, sc) for k, item in node.items.items()}
        memo[node] = out
        return out

    def parse(self, text: str, loc: Location, path: str, sc: Scope) -> X.Expr:
        parsed = self.exprs.get(text)
        if parsed is None:
            try:
                parsed = X.parse(text)
            except SpecError as err:
                raise located(err, loc, path, sc) from None
            self.exprs[text] = parsed
        return parsed

    def evaluate(self, text: str, loc: Location, path: str, sc: Scope) -> Any:
        env = sc.bind.env
        if env is None:
            fail(
                f"{show_text(text)} uses $, which only works inside a block's layers (for the block's parameters)"
                " or in a spec with params:",
                loc,
                path,
                sc,
            )
        parsed = self.parse(text, loc, path, sc)
        try:
            return parsed.evaluate(env)
        except SpecError as err:
            raise located(err, loc, path, sc) from None


def is_int(v: Any) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def is_null(node: YNode) -> bool:
    return isinstance(node, YScalar) and node.value is None


def kind_or_empty(node: YNode) -> str:
    if isinstance(node, YSeq) and not node.items:
        return "an empty list"
    if isinstance(node, YMap) and not node.items:
        return "an empty mapping"
    return kind(node)


def describe(node: YNode) -> str:
    return X.show(node.value) if isinstance(node, YScalar) else kind(node)


def and_(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
