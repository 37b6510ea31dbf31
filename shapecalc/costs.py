"""Where the cost goes: each row's share of the parameters and MACs, and a breakdown by layer type.

Shares are fractions of the network's totals (a group's share covers its subtree). The
breakdown sums the leaf layers of each type: ``conv2d 93.1% of MACs, linear 0.3% ...``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .analysis import Analysis


def share(part: int, whole: int) -> float:
    """``part / whole`` as a percentage; 0 when the whole is 0."""
    return 100.0 * part / whole if whole else 0.0


@dataclass(frozen=True)
class RowShare:
    params: float  # percent of all parameters
    macs: float  # percent of all MACs


def row_shares(analysis: Analysis) -> tuple[RowShare, ...]:
    """One :class:`RowShare` per row of ``analysis.rows``, in order."""
    t = analysis.totals
    return tuple(RowShare(share(r.params, t.params), share(r.macs, t.macs)) for r in analysis.rows)


@dataclass(frozen=True)
class TypeCost:
    """The leaf layers of one type: how many, their parameters and MACs, and their shares."""

    type: str
    layers: int
    params: int
    macs: int
    params_share: float
    macs_share: float


def breakdown(analysis: Analysis) -> tuple[TypeCost, ...]:
    """Cost per layer type, the most MACs first (then parameters, then name)."""
    sums: dict[str, list[int]] = {}
    for row in analysis.layers:
        s = sums.setdefault(row.type, [0, 0, 0])
        s[0] += 1
        s[1] += row.params
        s[2] += row.macs
    t = analysis.totals
    out = [TypeCost(k, n, p, m, share(p, t.params), share(m, t.macs)) for k, (n, p, m) in sums.items()]
    out.sort(key=lambda c: (-c.macs, -c.params, c.type))
    return tuple(out)


def breakdown_line(analysis: Analysis, limit: int = 4) -> str:
    """``conv2d 93.1% of MACs, linear 0.3% ...``: the types that carry MACs, largest first."""
    parts = [f"{c.type} {c.macs_share:.1f}%" for c in breakdown(analysis) if c.macs][:limit]
    if not parts:
        return ""
    return parts[0] + " of MACs" + "".join(f", {p}" for p in parts[1:])
