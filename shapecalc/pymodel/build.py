"""Building the user's model on the ``meta`` device, remembering where each module was made.

On ``meta`` no weight is allocated and initialisation does nothing: a model of
10^11 parameters is built in the time its ``__init__`` takes to run. While it is
built, torch's module-registration hook (removed afterwards) records the line of
the user's code that assigned each submodule, which located errors cite as
``built at model.py:13``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import Location
from .ref import (
    ModelRef,
    PythonModelError,
    exception_line,
    frame_location,
    innermost_user_frame,
    is_user_frame,
    raised_by_us,
    resolve,
    short_path,
)


@dataclass(frozen=True)
class BuiltModel:
    """The built module, and where in the user's code each submodule was created (by ``id``)."""

    module: Any
    name: str
    file: str
    sites: Mapping[int, Location]


def _call_site() -> Location | None:
    frame = sys._getframe(2)
    while frame is not None:
        if is_user_frame(frame.f_code.co_filename):
            return Location(short_path(frame.f_code.co_filename), frame.f_lineno, 1)
        frame = frame.f_back  # type: ignore[assignment]
    return None


def _describe_call(ref: ModelRef) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in ref.args.items())
    return f"{ref.name}({args})"


def build(ref: ModelRef, *, device: str = "meta") -> BuiltModel:
    """Import ``ref`` and call it with its arguments on ``device`` (default ``meta``).

    Raises :class:`PythonModelError` for an import failure, a missing name, an
    exception in the user's ``__init__`` (located at its line) or a result that is
    not an ``nn.Module``.
    """
    try:
        import torch
    except ImportError:
        from ..errors import MissingTorchError

        raise MissingTorchError("a Python model") from None
    factory = resolve(ref)
    sites: dict[int, Location] = {}

    def record(parent: Any, name: str, submodule: Any) -> None:
        if submodule is not None and id(submodule) not in sites:
            site = _call_site()
            if site is not None:
                sites[id(submodule)] = site

    def record_tensor(module: Any, name: str, tensor: Any) -> None:
        # a module's first parameter or buffer is registered inside its own __init__: the user's frame
        # then is the line that called the constructor (each item of an nn.Sequential(...) its own line)
        record(None, name, module)

    register = torch.nn.modules.module
    handles = [
        register.register_module_parameter_registration_hook(record_tensor),
        register.register_module_buffer_registration_hook(record_tensor),
        register.register_module_module_registration_hook(record),
    ]
    try:
        with torch.device(device):
            model = factory(**ref.args)
    except Exception as err:  # the user's __init__ raised: their error, at their line
        if isinstance(err, TypeError) and err.__traceback__ is not None and err.__traceback__.tb_next is None:
            # raised by the call itself, in no frame of its own: the name cannot be called with these
            # arguments (missing ones, or a function that is no model, a C builtin), not a bug of ours
            raise PythonModelError(f"{ref.text}: calling {_describe_call(ref)} failed: {exception_line(err)}") from None
        if raised_by_us(err.__traceback__):
            raise
        frame = innermost_user_frame(err.__traceback__)
        raise PythonModelError(
            f"building {_describe_call(ref)} failed: {exception_line(err)}", location=frame_location(frame)
        ) from None
    finally:
        for handle in handles:
            handle.remove()
    if not isinstance(model, torch.nn.Module):
        raise PythonModelError(f"{ref.text}: {_describe_call(ref)} returned {type(model).__name__}, not an nn.Module")
    return BuiltModel(model, ref.display, ref.file, sites)
