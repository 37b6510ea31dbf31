"""The learned filters of a convolution layer, read from a checkpoint, as arrays and pictures.

``load_tensors`` reads a torch checkpoint (a ``state_dict``, or a dict holding one) with
``weights_only=True`` — a checkpoint is data and must never run code — or a safetensors
file (no torch needed). ``pick`` chooses one convolution's weight by its module name (or,
with a spec, by the spec's path or ``name`` label) and returns a :class:`Filters`: the weight
as ``[out_channels, in_channels_per_group, *kernel]`` plus what it is. ``draw`` writes the
picture with matplotlib's object API (no pyplot, so the caller's backend is never touched).
Nothing here prints: the terminal view lives in ``cli/filters.py``.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import MissingTorchError, ShapecalcError
from .shapes import bracketed, crossed

#: keys under which training scripts commonly nest the state_dict in a checkpoint dict
NESTED_KEYS = ("state_dict", "model_state_dict", "model", "net", "module", "weights")
#: the layer types whose weight ``shapecalc filters`` draws (as the registry names them)
CONV_TYPES = ("conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d")


class FiltersError(ShapecalcError):
    """A weights file, a layer name or a spec that does not give a convolution to draw."""


@dataclass(frozen=True)
class Filters:
    """One convolution layer's weight, one filter per output channel.

    ``weight`` is a float64 numpy array ``[out_channels, in_channels / groups, *kernel]``
    (a transposed convolution's ``[in, out, ...]`` is swapped into this order); ``name``
    the module name in the state_dict; ``kind`` the layer type (``conv2d``; empty when only the
    tensor is known); ``where`` what a spec says of it (``layers[0] of net.yaml``).
    """

    name: str
    weight: Any
    kind: str = ""
    where: str = ""

    @property
    def out_channels(self) -> int:
        return int(self.weight.shape[0])

    @property
    def in_channels(self) -> int:
        return int(self.weight.shape[1])

    @property
    def kernel(self) -> tuple[int, ...]:
        return tuple(int(k) for k in self.weight.shape[2:])

    def scales(self, per_filter: bool) -> Any:
        """The colour scale of each filter, ``[out_channels]``: its own largest |weight|, or the layer's.

        A filter (or a layer) of zeros gets scale 1, so dividing by it is always defined.
        """
        import numpy as np

        peak = np.abs(self.weight).reshape(self.out_channels, -1).max(axis=1)
        if not per_filter:
            peak = np.full_like(peak, peak.max(initial=0.0))
        return np.where(peak > 0, peak, 1.0)


# --------------------------------------------------------------------------- reading weights


def _is_safetensors(path: Path) -> bool:
    """A safetensors file starts with the little-endian length of a JSON header, then ``{``."""
    with path.open("rb") as f:
        head = f.read(9)
    if len(head) < 9:
        return False
    (size,) = struct.unpack("<Q", head[:8])
    return head[8:9] == b"{" and 2 <= size <= path.stat().st_size - 8


def load_tensors(path: str | Path) -> dict[str, Any]:
    """Name -> float64 numpy array of every tensor in a checkpoint or safetensors file.

    Raises :class:`FiltersError` (one line, naming the file) for a missing file, a file
    that is neither, or a checkpoint ``torch.load(weights_only=True)`` refuses;
    :class:`MissingTorchError` for a torch checkpoint when torch is not installed.
    """
    path = Path(path)
    if not path.is_file():
        raise FiltersError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    if _is_safetensors(path):
        return _load_safetensors(path)
    return _load_torch(path)


def _load_safetensors(path: Path) -> dict[str, Any]:
    try:
        from safetensors import SafetensorError
        from safetensors.numpy import load_file
    except ImportError:
        raise FiltersError(
            f"{path}: reading a safetensors file needs the safetensors package: pip install 'shapecalc-cnn[filters]'"
        ) from None
    try:
        tensors = load_file(str(path))
    except (SafetensorError, ValueError, TypeError, OSError) as exc:  # bf16 has no numpy dtype: a TypeError
        raise FiltersError(f"{path}: not a safetensors file shapecalc can read ({_reason(exc)})") from None
    return {name: array.astype("float64") for name, array in tensors.items()}


def _load_torch(path: Path) -> dict[str, Any]:
    import importlib.util
    import pickle
    import zipfile

    if importlib.util.find_spec("torch") is None:
        raise MissingTorchError(f"{path}: reading a torch checkpoint")
    import torch

    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if "Unsupported global" in text:  # a class or function the safe unpickler would have to import
            raise FiltersError(
                f"{path}: the checkpoint holds Python objects, not only tensors, and is not loaded "
                "(weights_only=True: a checkpoint must not run code); save model.state_dict() instead"
            ) from None
        raise FiltersError(f"{path}: not a torch checkpoint or safetensors file ({_unpickler_reason(text)})") from None
    except EOFError:
        raise FiltersError(f"{path}: not a torch checkpoint or safetensors file (it is empty or cut short)") from None
    except KeyError:  # pickle's "invalid load key": the first byte is not a pickle opcode (text, an image, ...)
        raise FiltersError(f"{path}: not a torch checkpoint or safetensors file") from None
    except (RuntimeError, ValueError, OSError, zipfile.BadZipFile) as exc:
        raise FiltersError(f"{path}: not a torch checkpoint or safetensors file ({_reason(exc)})") from None
    state = _state_dict(obj)
    if state is None:
        raise FiltersError(f"{path}: the checkpoint holds no tensors (expected a state_dict, or a dict holding one)")
    return {name: t.detach().to(torch.float64).cpu().numpy() for name, t in state.items()}


def _unpickler_reason(text: str) -> str:
    """What torch's safe unpickler found wrong (its message opens with advice about ``weights_only``)."""
    _, found, rest = text.partition("WeightsUnpickler error:")
    detail = next((line.strip() for line in rest.splitlines() if line.strip()), "") if found else ""
    return f"torch's safe unpickler: {_shortened(detail)}" if detail else _shortened(text.strip().split("\n")[0])


def _reason(exc: BaseException) -> str:
    """The first line of an exception's message, shortened: enough to see what went wrong."""
    return _shortened((str(exc).strip().splitlines() or [type(exc).__name__])[0])


def _shortened(line: str) -> str:
    return line if len(line) <= 100 else line[:97] + "..."


def _state_dict(obj: Any) -> dict[str, Any] | None:
    """The name -> tensor mapping in a loaded checkpoint: the object itself or a dict nested in it."""
    import torch

    if not isinstance(obj, Mapping):
        return None
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if tensors:
        return tensors
    nested = [obj[k] for k in NESTED_KEYS if k in obj] + [v for v in obj.values() if isinstance(v, Mapping)]
    for value in nested:
        found = _state_dict(value)
        if found:
            return found
    return None


# --------------------------------------------------------------------------- choosing the layer


def _conv_names(tensors: Mapping[str, Any]) -> list[str]:
    """Module names whose ``weight`` has the rank of a convolution's (3 to 5), in file order."""
    return [name[: -len(".weight")] for name, a in tensors.items() if name.endswith(".weight") and 3 <= a.ndim <= 5]


def _listing(names: list[str]) -> str:
    if not names:
        return "there are no convolution weights (tensors 'NAME.weight' of rank 3 to 5) in the file"
    shown = ", ".join(names[:12]) + (f", ... ({len(names)} in all)" if len(names) > 12 else "")
    return f"convolution layers: {shown}"


@dataclass(frozen=True)
class _SpecLayer:
    module: str  # the module name in the to_torch model
    path: str
    label: str | None
    type: str
    weight_shape: tuple[int, ...] | None
    groups: int = 1


def _spec_layers(spec_file: str) -> tuple[list[_SpecLayer], str]:
    """Every leaf layer of a spec with its module name in the ``to_torch`` model (no torch needed)."""
    from .analysis import analyse
    from .spec import load
    from .torch_build import PlanNode, plan

    spec = load(spec_file)
    root = plan(spec, analyse(spec))
    out: list[_SpecLayer] = []

    def walk(node: PlanNode, prefix: str) -> None:
        for child in node.children:
            name = f"{prefix}{child.name}"
            if child.kind == "layer" and child.row is not None:
                row = child.row
                shapes = dict(row.result.tensors) if row.result is not None else {}
                weight = shapes.get("weight")
                groups = int(row.result.torch_kwargs.get("groups", 1)) if row.result is not None else 1
                out.append(_SpecLayer(name, row.path, row.label, row.type, tuple(weight) if weight else None, groups))
            walk(child, f"{name}.")

    walk(root, "")
    return out, Path(spec_file).name


def pick(tensors: Mapping[str, Any], layer: str | None = None, *, spec: str | None = None, file: str = "") -> Filters:
    """The filters of one convolution in ``tensors`` (from :func:`load_tensors`).

    ``layer`` is a module name (``conv1``, ``features.conv2d_0``, with or without
    ``.weight``); with ``spec`` (a spec file whose ``to_torch`` model the weights belong to)
    also the spec's layer path (``layers[0]``) or ``name`` label. Default: the first
    convolution. Raises :class:`FiltersError` naming the convolutions there are.
    """
    prefix = f"{file}: " if file else ""
    names = _conv_names(tensors)
    spec_layers: list[_SpecLayer] = []
    spec_name = ""
    if spec is not None:
        spec_layers, spec_name = _spec_layers(spec)
        names = [s.module for s in spec_layers if s.type in CONV_TYPES]
    chosen: _SpecLayer | None = None
    if layer is None:
        if not names:
            raise FiltersError(prefix + _listing(names) + (f" of {spec_name}" if spec else ""))
        module = names[0]
    else:
        module = layer[: -len(".weight")] if layer.endswith(".weight") else layer
        if spec_layers:
            matches = [s for s in spec_layers if module in (s.module, s.path, s.label)]
            if not matches:
                raise FiltersError(f"{prefix}no layer {layer!r} in {spec_name}; {_listing(names)}")
            module = matches[0].module
    if spec_layers:
        chosen = next(s for s in spec_layers if s.module == module)
        if chosen.type not in CONV_TYPES:
            raise FiltersError(
                f"{prefix}layer {layer!r} ({chosen.path} of {spec_name}) is a {chosen.type}, not a convolution; "
                + _listing(names)
            )
    key = f"{module}.weight"
    if key not in tensors:
        if chosen is not None:
            raise FiltersError(
                f"{prefix}no tensor {key!r} for {chosen.path} of {spec_name}: the weights are not a state_dict "
                f"of this spec's model ({_listing(_conv_names(tensors))} in the file)"
            )
        if any(n == module or n.startswith(module + ".") for n in tensors):
            raise FiltersError(f"{prefix}layer {layer!r} has no weight; {_listing(names)}")
        raise FiltersError(f"{prefix}no layer {layer!r}; {_listing(names)}")
    weight = tensors[key]
    if not 3 <= weight.ndim <= 5:
        shape = bracketed(weight.shape)
        raise FiltersError(f"{prefix}layer {layer!r} is not a convolution (its weight is {shape}); {_listing(names)}")
    if chosen is None:
        return Filters(module, weight)
    if chosen.weight_shape is not None and tuple(weight.shape) != chosen.weight_shape:
        have, want = bracketed(weight.shape), bracketed(chosen.weight_shape)
        raise FiltersError(
            f"{prefix}{key} is {have} but {chosen.path} of {spec_name} has a weight of {want}: "
            "the weights are not a state_dict of this spec's model"
        )
    if chosen.type.startswith("conv_transpose"):
        if chosen.groups != 1:
            raise FiltersError(f"{prefix}{chosen.path} of {spec_name}: grouped transposed convolutions are not drawn")
        weight = weight.swapaxes(0, 1)  # torch keeps [in, out, ...] for a transposed convolution
    return Filters(module, weight, chosen.type, f"{chosen.path} of {spec_name}")


# --------------------------------------------------------------------------- pictures


def kernel_2d(kernel: Any) -> Any:
    """One kernel as a 2-d array: a 1-d kernel as one row, a 3-d one as its depth slices side by side.

    The slices of a 3-d kernel are separated by a column of NaN (drawn as background).
    """
    import numpy as np

    if kernel.ndim == 1:
        return kernel[None, :]
    if kernel.ndim == 2:
        return kernel
    gap = np.full((kernel.shape[1], 1), np.nan)
    parts: list[Any] = []
    for i, piece in enumerate(kernel):
        parts += [gap, piece] if i else [piece]
    return np.concatenate(parts, axis=1)


def grid_shape(n: int) -> tuple[int, int]:
    """Rows and columns of a near-square grid of ``n`` tiles, wider than tall."""
    cols = math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


def mode(f: Filters) -> str:
    """How the filters are laid out: ``rgb`` (3 input channels), ``grid`` (1), ``rows`` (one per input channel)."""
    return "rgb" if f.in_channels == 3 else "grid" if f.in_channels == 1 else "rows"


def mosaic(f: Filters, per_filter: bool) -> tuple[Any, list[tuple[int, int]]]:
    """The whole picture as one array, with each tile's top-left corner (row, column) in it.

    ``grid`` and ``rows``: values ``weight / scale`` in [-1, 1], NaN between tiles. ``rgb``:
    an RGBA image, each filter's three input channels as red, green, blue around a mid-grey
    zero (``0.5 + weight / (2 * scale)``), transparent between tiles. Tiles are one pixel apart.
    """
    import numpy as np

    scale = f.scales(per_filter)
    tiles = [np.stack([kernel_2d(k) for k in filt]) / s for filt, s in zip(f.weight, scale)]  # [in, h, w] each
    h, w = tiles[0].shape[1:]
    layout = mode(f)
    if layout == "rows":
        rows, cols = f.in_channels, f.out_channels
    else:
        rows, cols = grid_shape(f.out_channels)
    height, width = rows * (h + 1) - 1, cols * (w + 1) - 1
    corners: list[tuple[int, int]] = []
    if layout == "rgb":
        image = np.zeros((height, width, 4))
        for o, tile in enumerate(tiles):
            r, c = divmod(o, cols)
            y, x = r * (h + 1), c * (w + 1)
            rgb = np.clip(0.5 + np.moveaxis(tile, 0, -1) / 2, 0.0, 1.0)
            alpha = np.where(np.isnan(rgb).any(axis=-1, keepdims=True), 0.0, 1.0)
            image[y : y + h, x : x + w] = np.concatenate([np.nan_to_num(rgb), alpha], axis=-1)
            corners.append((y, x))
        return image, corners
    image = np.full((height, width), np.nan)
    for o, tile in enumerate(tiles):
        if layout == "rows":
            for i, kernel in enumerate(tile):
                image[i * (h + 1) : i * (h + 1) + h, o * (w + 1) : o * (w + 1) + w] = kernel
            corners.append((0, o * (w + 1)))
        else:
            r, c = divmod(o, cols)
            image[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = tile[0]
            corners.append((r * (h + 1), c * (w + 1)))
    return image, corners


def scale_text(f: Filters, per_filter: bool) -> str:
    """Which colour scale is used, with its value(s)."""
    scale = f.scales(per_filter)
    if per_filter:
        return f"each filter on its own scale, its largest |weight| ({scale.min():.3g} to {scale.max():.3g})"
    return f"one scale for all filters: ±{scale[0]:.3g}, the layer's largest |weight|"


def legend(f: Filters, per_filter: bool) -> str:
    """What the colours mean (drawn under the picture)."""
    if mode(f) == "rgb":
        colours = "input channels 0, 1, 2 as red, green, blue; mid-grey = 0, full colour = ±scale"
        return f"{colours}\n{scale_text(f, per_filter)}"
    return f"red positive, blue negative, white 0\n{scale_text(f, per_filter)}"


def draw(f: Filters, path: str | Path, *, per_filter: bool = False, title: str | None = None) -> None:
    """Write the filters as a picture; the format follows the suffix (``.png``, ``.svg``, ``.pdf``).

    Uses matplotlib's ``Figure`` directly (no pyplot: no global backend or figure registry
    is touched). Raises :class:`FiltersError` when matplotlib is not installed.
    """
    try:
        from matplotlib.colors import Normalize
        from matplotlib.figure import Figure
    except ImportError:
        raise FiltersError("drawing a picture needs matplotlib: pip install 'shapecalc-cnn[filters]'") from None
    import matplotlib as mpl
    import numpy as np

    image, corners = mosaic(f, per_filter)
    height, width = image.shape[:2]
    layout = mode(f)
    pixel = max(0.06, min(0.25, 6.0 / max(width, height)))  # inches per kernel cell
    fig = Figure(figsize=(max(4.5, width * pixel + 1.6), height * pixel + 1.6), layout="constrained")
    ax = fig.add_subplot()
    if layout == "rgb":
        ax.imshow(image, interpolation="nearest")
    else:
        cmap = mpl.colormaps["RdBu_r"].with_extremes(bad=(1, 1, 1, 0))
        shown = ax.imshow(np.ma.masked_invalid(image), cmap=cmap, norm=Normalize(-1, 1), interpolation="nearest")
        bar = fig.colorbar(shown, ax=ax, shrink=0.8, pad=0.02)
        if per_filter:
            bar.set_label("weight / the filter's largest |weight|")
        else:
            peak = float(f.scales(False)[0])
            bar.set_ticks([-1, 0, 1], labels=[f"{-peak:.3g}", "0", f"{peak:.3g}"])
            bar.set_label("weight")
    h = f.weight.shape[2] if f.weight.ndim > 3 else 1
    if layout == "rows":
        ax.set_xticks([x + (image.shape[1] // f.out_channels) / 2 - 0.5 for _, x in corners][:: _step(f.out_channels)])
        ax.set_xticklabels([str(o) for o in range(f.out_channels)][:: _step(f.out_channels)], fontsize=7)
        ax.set_yticks([i * (h + 1) + h / 2 - 0.5 for i in range(f.in_channels)][:: _step(f.in_channels)])
        ax.set_yticklabels([str(i) for i in range(f.in_channels)][:: _step(f.in_channels)], fontsize=7)
        ax.set_xlabel("output channel (one filter per column)")
        ax.set_ylabel("input channel")
    else:
        ax.set_axis_off()
        for o, (y, x) in enumerate(corners):
            ax.text(x - 0.5, y - 0.6, str(o), fontsize=6, va="bottom", ha="left", color="0.35")
    kind = f.kind + " " if f.kind else ""
    what = f"{f.name}: {kind}weight {bracketed(f.weight.shape)}, {f.out_channels} filters of {crossed(f.kernel)}"
    ax.set_title(title or what, fontsize=10, pad=14 if layout != "rows" else 6)
    fig.supxlabel(legend(f, per_filter), fontsize=8)  # a figure label: constrained layout makes room for it
    fig.savefig(str(path), dpi=150)


def _step(n: int) -> int:
    """Label every channel up to 32, then every k-th so labels never overlap."""
    return 1 if n <= 32 else math.ceil(n / 32)
