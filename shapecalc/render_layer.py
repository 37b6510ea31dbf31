"""The rendering of ``shapecalc layer``: one :class:`~shapecalc.layer_report.LayerReport` as text lines or a
JSON document (values, never printed: the CLI prints them)."""

from __future__ import annotations

import math
from typing import Any

from .axis_size import missed_note
from .layer_report import LayerReport
from .registry import LayerResult
from .shapes import bracketed, per_axis


def text_lines(report: LayerReport, vs_dense: int | None = None) -> list[str]:
    """The text rendering of one layer report."""
    res = report.result
    title = report.layer.name + (f" {res.summary}" if res.summary else "")
    lines = [f"{title}: {report.torch_call()}"]
    rows: list[tuple[str, str, str]] = [
        ("input", bracketed(report.input), ""),
        ("output", bracketed(report.output), ""),
    ]
    for name, dims in res.tensors:
        rows.append((name, bracketed(dims), f"{math.prod(dims):,}"))
    width = max(len(r[1]) for r in rows)
    num_width = max(len(r[2]) for r in rows)
    for label, text, count in rows:
        lines.append(f"  {label:<8} {text:<{width}}  {count:>{num_width}}".rstrip())
    params = f"{res.params:,}"
    if res.trainable != res.params:
        params += f" (trainable {res.trainable:,})"
    lines.append(f"  {'params':<8} {params}")
    if res.buffers:
        lines.append(f"  {'buffers':<8} {res.buffers:,} (running statistics, not trained)")
    for_batch = f"; {report.macs:,} for a batch of {report.batch}" if report.batch != 1 else ""
    lines.append(f"  {'MACs':<8} {res.macs:,} per sample{for_batch} (FLOPs = 2 x MACs)")
    note = _missed(res)
    if note:
        lines.append("  " + note)
    if vs_dense is not None:
        cmp = report.vs_dense(vs_dense)
        w = len(f"{cmp.dense_weights:,}")
        lines += [
            "",
            f"why convolutions: a fully connected layer from the flattened input ({cmp.in_features:,} features)"
            f" to {cmp.out_features:,} units",
            f"  {'dense weights':<16} {cmp.dense_weights:>{w},}",
            f"  {report.layer.name + ' weights':<16} {cmp.layer_weights:>{w},}",
            f"  {cmp.ratio:,.0f}x fewer weights in the {report.layer.name}"
            if cmp.ratio >= 1
            else f"  {1 / cmp.ratio:,.0f}x more weights in the {report.layer.name}",
        ]
    return lines


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "inf", "-inf", "nan": JSON has no such numbers
    return value


def as_dict(report: LayerReport, vs_dense: int | None = None) -> dict[str, Any]:
    """The JSON rendering of one layer report."""
    res = report.result
    data: dict[str, Any] = {
        "type": report.layer.name,
        "torch": report.layer.torch_name,
        "torch_kwargs": {k: _jsonable(v) for k, v in res.torch_kwargs.items()},
        "input": list(report.input),
        "output": list(report.output),
        "batch": report.batch,
        "tensors": {name: list(shape) for name, shape in res.tensors},
        "params": res.params,
        "trainable": res.trainable,
        "buffers": res.buffers,
        "macs": res.macs,
        "macs_for_batch": report.macs,
        "unseen": list(res.unseen),
    }
    if vs_dense is not None:
        cmp = report.vs_dense(vs_dense)
        data["vs_dense"] = {
            "in_features": cmp.in_features,
            "out_features": cmp.out_features,
            "dense_weights": cmp.dense_weights,
            "layer_weights": cmp.layer_weights,
            "ratio": cmp.ratio,
        }
    return data


def _missed(res: LayerResult) -> str | None:
    """The note for input rows no tap touches, worded and counted as ``shapecalc out`` does."""
    if not any(res.unseen):
        return None
    n = len(res.unseen)
    kw = res.torch_kwargs
    kernel = per_axis(kw["kernel_size"], n)
    stride = per_axis(kw.get("stride") or kernel, n)  # pooling's stride defaults to its kernel
    return missed_note(res.unseen, res.unseen_at_end, kernel, stride, per_axis(kw.get("dilation", 1), n))
