"""The ``$`` expression grammar of block parameters (see ``SPEC.md``).

Inside a block's layers a string that contains ``$name`` is an expression::

    expr  := term (("+" | "-") term)*
    term  := unary (("*" | "//" | "%") unary)*
    unary := "-"* atom
    atom  := INT | "$" NAME | "(" expr ")"

with Python's integer semantics (floor division and modulo). It is tokenised and
parsed here by hand, never passed to ``eval`` and not to ``ast`` either: a
parameter may be called ``in``, which Python's grammar cannot parse as a name.

Work is bounded: parentheses nest at most :data:`MAX_PARENS` deep (the only
recursion), long ``+``/``*`` chains are compiled to a flat postfix program and
evaluated with a stack, and every literal and intermediate value must stay below
:data:`MAX_ABS` in magnitude, so no expression can build huge integers.

Errors are :class:`~shapecalc.errors.SpecError` without a location; the loader
adds the position of the string and the layer path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NoReturn

from ..errors import SpecError, show_text
from ..errors import show_value as show  # a value as the spec writes it, in messages

#: every literal and every intermediate value must be smaller than this in magnitude
MAX_ABS = 10**12
#: parentheses nesting limit (the parser recurses once per level)
MAX_PARENS = 50
#: the longest expression (a formula for one value: real ones are a few dozen characters)
MAX_CHARS = 1_000
#: how much of a longer expression a message shows (an error's position needs the text around it)
SHOWN = 200

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_TOKEN = re.compile(rf"\s+|(\d+)|\$({_NAME})|(//|\*\*|[-+*%()/])|(\$)|(.)", re.DOTALL)
# only labels with ``$`` need it: compiled on first use (re caches it), not at import
_LABEL_NAME = rf"\$({_NAME})"


def has_dollar(text: str) -> bool:
    """Whether a string is an expression (or a label template): it contains ``$``."""
    return "$" in text


class Expr:
    """A parsed expression (read-only by convention).

    ``single`` is the parameter name when the text is exactly ``$name``: its value
    is then taken as it is (a list, a bool), not required to be an int.

    A plain slotted class, not a frozen dataclass: the loader's internal form, and
    building a dataclass costs ~0.45 ms at import (it execs each generated method's
    source), a measurable part of ``shapecalc check``'s start-up.
    """

    __slots__ = ("code", "names", "single", "text")

    def __init__(
        self, text: str, code: tuple[tuple[str, Any], ...], names: frozenset[str], single: str | None = None
    ) -> None:
        self.text = text
        self.code = code
        self.names = names
        self.single = single

    def __repr__(self) -> str:
        return f"Expr({self.text!r})"

    def evaluate(self, env: Mapping[str, Any]) -> Any:
        """The value of the expression with the parameters in ``env``.

        Raises :class:`SpecError` for a name not in ``env``, a parameter that is not
        an int (unless the expression is exactly ``$name``), division by zero or a
        value out of range.
        """
        if self.single is not None:
            return _param(self, env, self.single)
        stack: list[int] = []
        for op, arg in self.code:
            if op == "int":
                stack.append(arg)
                continue
            if op == "name":
                value = _param(self, env, arg)
                if not isinstance(value, int) or isinstance(value, bool):
                    raise SpecError(
                        f"parameter ${arg} is {show(value)}, not an int: expressions compute with ints"
                        f" (use ${arg} alone to pass the value as it is) in {show_text(self.text, SHOWN)}"
                    )
                stack.append(value)
                continue
            if op == "neg":
                stack[-1] = -stack[-1]
                continue
            right = stack.pop()
            left = stack.pop()
            if op == "+":
                result = left + right
            elif op == "-":
                result = left - right
            elif op == "*":
                result = left * right
            else:
                if right == 0:
                    raise SpecError(f"division by zero in {show_text(self.text, SHOWN)} ({left} {op} 0)")
                result = left // right if op == "//" else left % right
            if abs(result) >= MAX_ABS:
                raise SpecError(
                    f"{show_text(self.text, SHOWN)} is out of range:"
                    f" {left} {op} {right} is not below 10**12 in magnitude"
                )
            stack.append(result)
        return stack[0]


def _param(expr: Expr, env: Mapping[str, Any], name: str) -> Any:
    try:
        return env[name]
    except KeyError:
        raise SpecError(f"unknown parameter ${name} in {show_text(expr.text, SHOWN)}") from None


class _Parser:
    """Recursive descent over the token list; emits a postfix program."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, Any, int]] = []  # (kind, value, position)
        if len(text) > MAX_CHARS:
            self.fail(f"longer than an expression may be ({MAX_CHARS:,} characters)", None)
        for m in _TOKEN.finditer(text):
            number, name, op, dollar, other = m.groups()
            pos = m.start()
            if number is not None:
                if len(number) > 13 or int(number) >= MAX_ABS:
                    self.fail(f"the number {number[:20]}{'...' if len(number) > 20 else ''} is too large", pos)
                self.tokens.append(("int", int(number), pos))
            elif name is not None:
                self.tokens.append(("name", name, pos))
            elif op is not None:
                if op == "/":
                    self.fail("'/' is not allowed: use '//' (floor division)", pos)
                if op == "**":
                    self.fail("'**' is not allowed: only + - * // % and parentheses", pos)
                self.tokens.append(("op", op, pos))
            elif dollar is not None:
                self.fail("'$' must be followed by a parameter name", pos)
            elif other is not None:
                what = "names are written $name" if other.isalpha() or other == "_" else "only + - * // % and ()"
                self.fail(f"unexpected {other!r} ({what})", pos)
        self.i = 0
        self.code: list[tuple[str, Any]] = []

    def fail(self, what: str, pos: int | None) -> NoReturn:
        where = (
            ""
            if pos is None and len(self.text) > MAX_CHARS
            else " at the end"
            if pos is None
            else f" at position {pos + 1}"
        )
        raise SpecError(f"bad expression {show_text(self.text, SHOWN)}: {what}{where}")

    def peek(self) -> tuple[str, Any, int] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def is_op(self, *ops: str) -> bool:
        tok = self.peek()
        return tok is not None and tok[0] == "op" and tok[1] in ops

    def parse(self) -> tuple[tuple[str, Any], ...]:
        if not self.tokens:
            self.fail("it is empty", None)
        self.expr(0)
        tok = self.peek()
        if tok is not None:
            self.fail(f"unexpected {_tok_text(tok)}", tok[2])
        return tuple(self.code)

    def expr(self, depth: int) -> None:
        self.term(depth)
        while self.is_op("+", "-"):
            op = self.tokens[self.i][1]
            self.i += 1
            self.term(depth)
            self.code.append((op, None))

    def term(self, depth: int) -> None:
        self.unary(depth)
        while self.is_op("*", "//", "%"):
            op = self.tokens[self.i][1]
            self.i += 1
            self.unary(depth)
            self.code.append((op, None))

    def unary(self, depth: int) -> None:
        negations = 0
        while self.is_op("-"):  # a loop, not recursion: "- - - 1" cannot exhaust the stack
            negations += 1
            self.i += 1
        self.atom(depth)
        if negations % 2:
            self.code.append(("neg", None))

    def atom(self, depth: int) -> None:
        tok = self.peek()
        if tok is None:
            self.fail("expected a number, $name or '('", None)
        kind, value, pos = tok
        if kind in ("int", "name"):
            self.i += 1
            self.code.append((kind, value))
        elif kind == "op" and value == "(":
            if depth >= MAX_PARENS:
                self.fail(f"parentheses nest more than {MAX_PARENS} deep", pos)
            self.i += 1
            self.expr(depth + 1)
            if not self.is_op(")"):
                nxt = self.peek()
                self.fail("expected ')'", None if nxt is None else nxt[2])
            self.i += 1
        else:
            self.fail(f"expected a number, $name or '(', not {_tok_text(tok)}", pos)


def _tok_text(tok: tuple[str, Any, int]) -> str:
    kind, value, _ = tok
    if kind == "name":
        return f"${value}"
    return repr(str(value))


def parse(text: str) -> Expr:
    """Parse an expression; raises :class:`SpecError` for anything outside the grammar."""
    # exactly ``$name`` (blanks around allowed), the common case: string tests instead of a regex
    # compiled at import (\s and str.strip() agree on what a blank is)
    stripped = text.strip()
    name = stripped[1:]
    if stripped[:1] == "$" and name.isascii() and name.isidentifier():
        return Expr(text, (("name", name),), frozenset((name,)), name)
    code = _Parser(text).parse()
    names = frozenset(arg for op, arg in code if op == "name")
    return Expr(text, code, names)


def label_names(text: str) -> frozenset[str]:
    """The parameter names a ``name`` label refers to (``"stage$i"`` -> ``{"i"}``)."""
    if "$" not in text:  # a plain label, most of them: the regex is not even compiled
        return frozenset()
    return frozenset(re.findall(_LABEL_NAME, text))


def substitute_label(text: str, env: Mapping[str, Any]) -> str:
    """A ``name`` label with each ``$name`` replaced by the parameter's value as text."""

    def repl(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in env:
            raise SpecError(f"unknown parameter ${name} in the name {show_text(text, SHOWN)}")
        value = env[name]
        return value if isinstance(value, str) else show(value)

    return re.sub(_LABEL_NAME, repl, text)
