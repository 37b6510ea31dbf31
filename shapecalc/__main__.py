"""The ``shapecalc`` console script and ``python -m shapecalc``."""

from __future__ import annotations

import gc
import sys
from typing import NoReturn

from .cli import main


def run() -> NoReturn:
    """Run the command line, then end the process.

    The process ends here: what is alive now is freed by the OS. Frozen, it is left out of
    the interpreter's teardown collection, which would otherwise walk and free every
    module's objects one by one (~7 ms of `shapecalc check`'s ~70 ms). Only this one-shot
    wrapper does it; :func:`shapecalc.cli.main` leaves the caller's process alone.
    """
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    run()
