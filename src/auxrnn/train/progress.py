"""The progress bar of a run in a terminal, with log lines printed above it rather than into it."""
from __future__ import annotations

import logging
import os
import sys
from contextlib import nullcontext


def terminal_has_width() -> bool:
    """Whether stderr is a terminal a bar can be drawn on; a pty of size 0 x 0 gets log lines instead."""
    try:
        return sys.stderr.isatty() and os.get_terminal_size(sys.stderr.fileno()).columns > 0
    except (OSError, ValueError):  # no file descriptor (a captured stream)
        return False


def progress_bar(total: int, initial: int, show: bool):
    """(bar, context): a tqdm bar over the steps (disabled unless `show`), and the context inside which the
    `auxrnn` logger writes through tqdm.write, so an evaluation line never lands inside the bar."""
    from tqdm.auto import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    bar = tqdm(total=total, initial=initial, disable=not show, unit="step", dynamic_ncols=True)
    return bar, logging_redirect_tqdm([logging.getLogger("auxrnn")], tqdm_class=tqdm) if show else nullcontext()
