"""The architectures that ship with shapecalc, reachable by name.

The specs live in the repository's top-level ``architectures/`` folder; a wheel
carries them as ``shapecalc/architectures/*.yaml`` (pyproject maps the package
``shapecalc.architectures`` to that folder). :func:`directory` finds them in
either layout without importing anything, so ``shapecalc check NAME`` stays as
fast as ``check FILE``.

A command that takes a spec file takes a name too (``shapecalc summary resnet50``):
:func:`resolve` turns the name into the shipped file's path; an existing path
always wins over a name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ShapecalcError

_SUFFIX = ".yaml"


def directory() -> Path:
    """The folder holding the shipped specs (installed: inside the package; a checkout: the repo's)."""
    here = Path(__file__).resolve().parent
    installed = here / "architectures"
    if installed.is_dir():
        return installed
    return here.parent / "architectures"


def names() -> list[str]:
    """Names of the shipped architectures (their file stems), sorted."""
    folder = directory()
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob(f"*{_SUFFIX}") if p.is_file())


def path_of(name: str) -> Path | None:
    """The shipped spec called ``name`` (``resnet50``, ``ResNet50``, ``resnet50.yaml``), or None."""
    stem = name[: -len(_SUFFIX)] if name.lower().endswith(_SUFFIX) else name
    if not stem or any(sep in stem for sep in ("/", "\\", os.sep)) or stem.startswith("."):
        return None
    known = names()
    match = stem if stem in known else next((n for n in known if n.lower() == stem.lower()), None)
    return directory() / f"{match}{_SUFFIX}" if match is not None else None


def looks_like_name(arg: str) -> bool:
    """A bare word (no folder, no ``.py`` or ``module:NAME`` reference) that could name a shipped spec."""
    return bool(arg) and not any(c in arg for c in "/\\:") and not arg.endswith(".py")


def resolve(arg: str) -> str:
    """The spec file ``arg`` means: itself when it exists, else the shipped spec of that name.

    Raises :class:`ShapecalcError` for a bare name that is neither a file nor a shipped
    architecture (with the closest name); any other missing path is returned as it is,
    for the loader to report.
    """
    if os.path.exists(arg) or not looks_like_name(arg):
        return arg
    found = path_of(arg)
    if found is not None:
        return str(found)
    from .registry import did_you_mean

    raise ShapecalcError(
        f"{arg}: no such file, and no shipped architecture of that name{did_you_mean(arg, names())};"
        " `shapecalc list` shows them"
    )


@dataclass(frozen=True)
class Entry:
    """One shipped architecture, analysed: what ``shapecalc list`` shows."""

    name: str
    file: str
    input: tuple[int, ...]
    output: tuple[int, ...]
    params: int
    buffers: int
    macs: int
    receptive_field: int | None
    #: the spec's ``description``: the paper and the torchvision builder it mirrors
    source: str


def catalogue() -> list[Entry]:
    """Every shipped architecture loaded and analysed (no torch), sorted by name."""
    from .analysis import analyse
    from .spec import load

    entries = []
    for name in names():
        file = directory() / f"{name}{_SUFFIX}"
        spec = load(file)
        a = analyse(spec)
        entries.append(
            Entry(
                name=name,
                file=str(file),
                input=a.input,
                output=a.output,
                params=a.totals.params,
                buffers=a.totals.buffers,
                macs=a.totals.macs,
                receptive_field=a.receptive_field,
                source=" ".join((spec.description or "").split()),
            )
        )
    return entries


#: Published receptive fields: Araujo, Norris and Sim, "Computing Receptive Fields of Convolutional
#: Neural Networks" (Distill, 2019), computed on TF-slim's models at their last end-point
#: (google-research/receptive_field, RECEPTIVE_FIELD_TABLE.md). name -> (size, TF-slim model)
PUBLISHED_RF: dict[str, tuple[int, str]] = {
    "alexnet": (195, "alexnet_v2"),
    "vgg11": (150, "vgg_a"),
    "vgg11_bn": (150, "vgg_a"),
    "vgg16": (212, "vgg_16"),
    "vgg16_bn": (212, "vgg_16"),
    "inception_v3": (1311, "inception_v3"),
    "resnet50": (483, "resnet_v1_50"),
    "resnet101": (1027, "resnet_v1_101"),
    "resnet152": (1507, "resnet_v1_152"),
}

#: why a published value differs from ours, where it does: the models differ, not the arithmetic
RF_NOTES = {
    "resnet_v1": (
        "TF-slim's ResNet v1 strides in the last unit of each of its first three stages, torchvision's in"
        " the first unit of each of its last three (both on the 3x3): fewer 3x3s run at the coarser"
        " jumps, 56 pixels less field for the same depth (ResNet-50: 11 after the stem, +24 in stage 1,"
        " +8+48, +16+160, +32+128 = 427; TF-slim's 35, 99, 291, 483 per stage)."
    ),
}


def _cell(value: int | None) -> str:
    return f"{value:,}" if value is not None else "—"


def gallery_markdown(entries: list[Entry] | None = None) -> str:
    """``docs/gallery.md``: every shipped architecture's totals and receptive field (a test keeps it current)."""
    if entries is None:
        entries = catalogue()
    lines = [
        "# Gallery: the shipped architectures",
        "",
        "Every spec in `architectures/` ships with shapecalc and is usable by name",
        "(`shapecalc summary resnet18`). The numbers below are computed from the specs by",
        "`shapecalc list` (per sample, no torch needed); the tests and CI prove them against",
        "PyTorch (and torchvision's own modules where a spec mirrors one). This page is generated:",
        "`SHAPECALC_UPDATE_GALLERY=1 pytest tests/test_gallery.py` rewrites it, and the test fails",
        "when it is out of step with the specs.",
        "",
        "MACs are multiply-accumulates of the convolution and linear layers (half of",
        "`FlopCounterMode`'s FLOPs). The receptive field is the size, in input pixels, at the last",
        "layer whose output still has a spatial axis longer than 1 (Araujo et al., Distill 2019).",
        "",
        "| name | input | output | params | buffers | MACs | receptive field | published | source |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    notes: list[str] = []
    for e in entries:
        published = PUBLISHED_RF.get(e.name)
        shown = "—"
        if published is not None:
            size, model = published
            shown = f"{size:,} (`{model}`)"
            if size != e.receptive_field:
                note = RF_NOTES.get(model.rsplit("_", 1)[0] if model.startswith("resnet_v1") else model, "")
                note = note or f"TF-slim's `{model}` is not the same network as this spec's."
                if note not in notes:
                    notes.append(note)
                shown += f" [{notes.index(note) + 1}]"
        lines.append(
            f"| `{e.name}` | {'x'.join(map(str, e.input))} | {'x'.join(map(str, e.output))} | {_cell(e.params)}"
            f" | {_cell(e.buffers)} | {_cell(e.macs)} | {_cell(e.receptive_field)} | {shown} | {e.source} |"
        )
    lines += [
        "",
        "Published values are Araujo et al.'s, computed on TF-slim's models (named in the column);",
        "where a TF-slim model is the same network as ours, the two agree exactly.",
    ]
    for i, note in enumerate(notes, 1):
        lines += ["", f"[{i}] {note}"]
    return "\n".join(lines) + "\n"
