"""``python -m shapecalc``."""

from .cli import main

main()
