"""The spec loader: a YAML architecture spec -> a validated :class:`~shapecalc.spec.model.Spec`.

The format is ``SPEC.md`` (a user contract). The file is untrusted: it is read
with a safe parser (:mod:`.yamlnodes`), expressions are parsed by a small grammar
(:mod:`.expr`), never evaluated by Python, and all work is bounded (YAML depth and
alias expansion, layer nesting, the number of layers ``repeat`` and blocks expand to).

What comes out is concrete (:mod:`.model`): blocks are expanded, ``$`` expressions
evaluated, ``repeat`` unrolled, every argument checked by the registry. Every node
keeps its path and position.

The parts, in the order a file goes through them::

    yamlnodes.py   YAML text -> positioned nodes (safe, bounded)
    document.py    load/loads; the top-level keys, input, expect        (Reader)
    blocks.py      blocks: definitions read and checked before any use  (BlockChecker)
    entries.py     one entry -> type, arguments, reserved keys; a structure's lists (Entries)
    expand.py      entries -> model nodes: repeat, block uses, structures, arguments (Expander)
    copies.py      an entry written before word for word: the first one's tree, moved (Built)
    values.py      YAML values -> Python, with $ expressions evaluated  (Values)
    expr.py        the $ expression grammar
    scope.py       where the loader is (Scope, Bindings) and how errors are located
    model.py       the result: Spec, Layer, Sequential, Residual, Concat

Paths (in error messages and the analysis table)::

    layers[3]                              a top-level entry
    layers[3].residual.body[1]             residual body / shortcut items
    layers[5].concat[1][0]                 concat branch 1, item 0 (both concat forms)
    layers[2].sequential.layers[0]         a sequential's items
    layers[4].basic.layers[0]              through a use of block 'basic'
    layers[2]#2                            copy 2 (1-based) of a repeated entry;
    layers[2]#2.sequential.layers[0]       its contents continue as usual

Errors are ``FILE:LINE:COL: PATH (TYPE): message``. Inside a block the
location is the outermost use of the block (where the values come from) and
the message ends with ``(in block 'b' defined at line 7)``; a problem that
does not depend on the values (an unknown type, a bad expression) is found
when the block definition is checked and points into the definition.
"""

from __future__ import annotations

from .document import EXPECT_KEYS, MAX_LAYERS, TOP_KEYS, load, loads, suppressions
from .expand import MAX_NESTING

__all__ = ["EXPECT_KEYS", "MAX_LAYERS", "MAX_NESTING", "TOP_KEYS", "load", "loads", "suppressions"]
