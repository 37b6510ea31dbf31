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
                macs=a.totals.macs,
                receptive_field=a.receptive_field,
                source=" ".join((spec.description or "").split()),
            )
        )
    return entries
