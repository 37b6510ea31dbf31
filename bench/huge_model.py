"""A model file of 10^11 parameters for ``bench/pymodels.py``: ten Linear(100,000 -> 100,000), no bias.

In float32 its weights would take 373 GiB; ``shapecalc summary bench/huge_model.py:Huge
--input 100000`` builds it on the meta device and needs none of that.
"""

from torch import nn


class Huge(nn.Module):
    def __init__(self, layers: int = 10, width: int = 100_000) -> None:
        super().__init__()
        self.layers = nn.Sequential(*[nn.Linear(width, width, bias=False) for _ in range(layers)])

    def forward(self, x):
        return self.layers(x)
