"""docs/layers.md lists every layer type of the registry; its table is generated from it."""

from __future__ import annotations

import os
from pathlib import Path

from shapecalc.registry import KIND_DOCS, LAYERS, REQUIRED, LayerType

PAGE = Path(__file__).parent.parent / "docs" / "layers.md"
BEGIN = "<!-- generated from shapecalc.registry: SHAPECALC_UPDATE_DOCS=1 pytest tests/test_layer_docs.py -->"
END = "<!-- end of generated table -->"


def _arg(a: object) -> str:
    from shapecalc.registry import Arg

    assert isinstance(a, Arg)
    if a.inferred:
        return f"{a.name} (inferred)"
    if a.default is REQUIRED:
        return f"**{a.name}** ({KIND_DOCS[a.kind]})"
    default = a.default
    shown = "null" if default is None else str(default).lower() if isinstance(default, bool) else repr(default)
    return f"{a.name}={shown}"


def _torch(lt: LayerType) -> str:
    return f"shapecalc `{lt.torch_name}`" if lt.source == "shapecalc" else f"`nn.{lt.torch_name}`"


def generated_table() -> str:
    families: dict[str, list[LayerType]] = {}
    for lt in LAYERS.values():
        families.setdefault(lt.family, []).append(lt)
    lines = [BEGIN]
    for family in sorted(families):
        lines += ["", f"### {family}", "", "| type | torch | arguments | what it does |", "| --- | --- | --- | --- |"]
        for lt in sorted(families[family], key=lambda t: t.name):
            args = ", ".join(_arg(a) for a in lt.args) or "—"
            lines.append(f"| `{lt.name}` | {_torch(lt)} | {args} | {lt.doc} |")
    lines += ["", END]
    return "\n".join(lines)


def test_layer_table_is_current() -> None:
    text = PAGE.read_text(encoding="utf-8")
    start, end = text.index(BEGIN), text.index(END) + len(END)
    fresh = text[:start] + generated_table() + text[end:]
    if os.environ.get("SHAPECALC_UPDATE_DOCS"):
        PAGE.write_text(fresh, encoding="utf-8")
        text = fresh
    assert text == fresh, "docs/layers.md is out of step: SHAPECALC_UPDATE_DOCS=1 pytest tests/test_layer_docs.py"
    for lt in LAYERS.values():
        assert f"| `{lt.name}` |" in text
