"""Model references (``path/to/file.py:Name``, ``package.module:Name``) and importing them.

A reference names a Python object that builds an ``nn.Module``: a subclass of it
or a function returning one. Importing runs the user's own code (that is what
was asked for); whatever goes wrong there is reported as the user's error, with
the location in their file, never as a traceback.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

from ..errors import Location, ShapecalcError, show_value

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_REF = re.compile(rf"^(?P<where>.+\.py|{_NAME}(?:\.{_NAME})*):(?P<name>{_NAME}(?:\.{_NAME})*)$")


class PythonModelError(ShapecalcError):
    """A problem in the user's Python model: importing it, building it or running its forward pass."""


@dataclass(frozen=True)
class ModelRef:
    """A parsed reference: a file (``path``) or a module (``module``), and the object's ``name``."""

    text: str
    name: str
    path: str | None = None  # a .py file
    module: str | None = None  # a dotted module name
    args: Mapping[str, Any] = field(default_factory=dict)

    @property
    def display(self) -> str:
        """The model's name for titles: ``SimpleCNN``."""
        return self.name.rsplit(".", 1)[-1]

    @property
    def file(self) -> str:
        """The file or module the model comes from, for reports."""
        return self.path if self.path is not None else str(self.module)


def looks_like_ref(text: str) -> bool:
    """True when ``text`` is a model reference rather than a spec path.

    ``model.py:Net`` and ``pkg.mod:Net`` are references; an existing file is
    never one (a spec may be named ``a:b.yaml``).
    """
    return bool(_REF.match(text)) and not os.path.isfile(text)


def parse_ref(
    text: str, args: Mapping[str, Any] | None = None, *, base: str | os.PathLike[str] | None = None
) -> ModelRef:
    """Parse ``PATH.py:NAME`` or ``package.module:NAME``; a relative path is taken from ``base``."""
    m = _REF.match(text.strip())
    if not m:
        raise ShapecalcError(f"{text!r} is not a model reference: write path/to/file.py:Name or package.module:Name")
    where, name = m.group("where"), m.group("name")
    if where.endswith(".py"):
        path = where if base is None or os.path.isabs(where) else os.path.join(os.fspath(base), where)
        return ModelRef(text, name, path=path, args=dict(args or {}))
    return ModelRef(text, name, module=where, args=dict(args or {}))


def parse_args(pairs: Iterable[str]) -> dict[str, Any]:
    """``key=value`` pairs to keyword arguments; each value is read as plain (safe) YAML.

    ``num_classes=10`` gives an int, ``widths=[32, 64]`` a list, ``act=relu`` a string.
    """
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not re.fullmatch(_NAME, key):
            raise ShapecalcError(f"--arg {pair!r}: write key=value, the key a Python identifier")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as err:
            raise ShapecalcError(
                f"--arg {key}: {raw!r} is not a plain YAML value: {str(err).splitlines()[0]}"
            ) from None
        if not _plain(value):
            raise ShapecalcError(f"--arg {key}: only plain values (numbers, strings, bools, null, lists, mappings)")
        out[key] = value
    return out


def _plain(value: Any) -> bool:
    if value is None or isinstance(value, bool | int | float | str):
        return True
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


# --------------------------------------------------------------------------- where user code failed


def _internal_prefixes() -> tuple[str, ...]:
    """Folders whose frames are not the user's: shapecalc itself, torch, the standard library."""
    import sysconfig

    roots = {str(Path(__file__).resolve().parents[1])}
    for mod in ("torch", "importlib"):
        found = sys.modules.get(mod)
        if found is not None and getattr(found, "__file__", None):
            roots.add(str(Path(found.__file__).resolve().parent))  # type: ignore[arg-type]
    roots.add(sysconfig.get_paths()["stdlib"])
    return tuple(r + os.sep for r in roots)


def is_user_frame(filename: str) -> bool:
    """A frame of the user's code: not shapecalc, torch or the standard library, and a real file."""
    if filename.startswith("<"):
        return False
    return not os.path.realpath(filename).startswith(_internal_prefixes())


def short_path(filename: str) -> str:
    """A path as the user would write it: relative to the working folder when below it."""
    try:
        rel = os.path.relpath(filename)
    except ValueError:  # another drive (Windows)
        return filename
    return filename if rel.startswith(".." + os.sep) else rel


def user_frames(tb: TracebackType | None) -> list[traceback.FrameSummary]:
    """The traceback's frames in the user's code, outermost first."""
    return [f for f in traceback.extract_tb(tb) if is_user_frame(f.filename)]


def innermost_user_frame(tb: TracebackType | None) -> traceback.FrameSummary | None:
    frames = user_frames(tb)
    return frames[-1] if frames else None


def raised_by_us(tb: TracebackType | None) -> bool:
    """True when the innermost frame is shapecalc's own code: a bug, which keeps its traceback."""
    frames = traceback.extract_tb(tb)
    if not frames:
        return False
    ours = str(Path(__file__).resolve().parents[1]) + os.sep
    return os.path.realpath(frames[-1].filename).startswith(ours)


def exception_line(exc: BaseException) -> str:
    """``ValueError: bad thing`` (first line of the message)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def forward_location(model: Any) -> Location | None:
    """Where ``def forward`` of the model's class is written (None when its source is unknown)."""
    import inspect

    try:
        file = inspect.getsourcefile(type(model).forward)
        lines, line = inspect.getsourcelines(type(model).forward)
    except (OSError, TypeError):
        return None
    if not file or not lines:
        return None
    return Location(short_path(file), line, len(lines[0]) - len(lines[0].lstrip()) + 1)


def frame_location(frame: traceback.FrameSummary | None) -> Location | None:
    """The frame's place as a :class:`Location` (1-based column, 1 when unknown)."""
    if frame is None:
        return None
    col = getattr(frame, "colno", None)
    return Location(short_path(frame.filename), frame.lineno or 1, (col or 0) + 1)


# --------------------------------------------------------------------------- importing


def _import_file(path: str) -> ModuleType:
    p = Path(path)
    if not p.is_file():  # a directory, a FIFO or a device is never imported (nor read: a FIFO would block)
        raise PythonModelError(f"{path}: no such file" if not p.exists() else f"{path}: not a regular file")
    # A unique module name per file: two model files called model.py do not collide.
    resolved = p.resolve()
    mod_name = "shapecalc_user_" + re.sub(r"\W", "_", str(resolved))
    cached = sys.modules.get(mod_name)
    if cached is not None:
        return cached
    spec = importlib.util.spec_from_file_location(mod_name, resolved)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # the file's folder is importable while it runs, as `python file.py` would have it (sibling modules)
    folder = str(resolved.parent)
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as err:
        sys.modules.pop(mod_name, None)
        loc = Location(short_path(err.filename or path), err.lineno or 1, err.offset or 1)
        raise PythonModelError(f"importing {path} failed: SyntaxError: {err.msg}", location=loc) from None
    except Exception as err:  # the user's module failed while running: their error, reported with its line
        sys.modules.pop(mod_name, None)
        if raised_by_us(err.__traceback__):
            raise
        frame = innermost_user_frame(err.__traceback__)
        raise PythonModelError(
            f"importing {path} failed: {exception_line(err)}", location=frame_location(frame) or Location(path, 1, 1)
        ) from None
    finally:
        if added and folder in sys.path:
            sys.path.remove(folder)
    return module


def _import_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name and (name == err.name or name.startswith(err.name + ".")):
            raise PythonModelError(f"no module named {err.name!r} (for {name}) in this environment") from None
        frame = innermost_user_frame(err.__traceback__)
        raise PythonModelError(
            f"importing {name} failed: {exception_line(err)}", location=frame_location(frame)
        ) from None
    except SyntaxError as err:
        loc = Location(short_path(err.filename or name), err.lineno or 1, err.offset or 1)
        raise PythonModelError(f"importing {name} failed: SyntaxError: {err.msg}", location=loc) from None
    except Exception as err:
        if raised_by_us(err.__traceback__):
            raise
        frame = innermost_user_frame(err.__traceback__)
        raise PythonModelError(
            f"importing {name} failed: {exception_line(err)}", location=frame_location(frame)
        ) from None


def resolve(ref: ModelRef) -> Any:
    """Import the reference's file or module and return the named object (a class or a function)."""
    module = _import_file(ref.path) if ref.path is not None else _import_module(str(ref.module))
    obj: Any = module
    for part in ref.name.split("."):
        if not hasattr(obj, part):
            names = sorted(n for n, v in vars(module).items() if not n.startswith("_") and callable(v))
            from ..registry import did_you_mean

            raise PythonModelError(
                f"{ref.file} has no {ref.name!r}{did_you_mean(ref.name, names)}"
                + (f"; it defines {', '.join(names[:12])}" if names else "")
            )
        obj = getattr(obj, part)
    if not callable(obj):
        raise PythonModelError(
            f"{ref.text}: {ref.name} is {show_value(type(obj).__name__)}, not an nn.Module class or a function"
        )
    return obj
