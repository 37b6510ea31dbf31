"""Small specs that several test modules share; their numbers are worked by hand where they are asserted."""

from __future__ import annotations

#: conv 8*3*9 = 216 params (no bias), batchnorm 16 (+ 17 buffers), linear 8*8*8 = 512 -> 10: 5,130; 5,362 in all
TINY = """\
name: tiny
input: [3, 16, 16]
layers:
  - conv2d: {out_channels: 8, kernel_size: 3, padding: 1, bias: false}
  - batchnorm2d
  - relu
  - maxpool2d: {kernel_size: 2}
  - flatten
  - linear: {out_features: 10}
"""
