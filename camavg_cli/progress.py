"""The command's progress bar: tqdm on a terminal's standard error, plain lines where standard
error is a file or a pipe (a log keeps one line per step, not a stream of carriage returns) or
tqdm is missing, nothing with --quiet.

Standard output stays clean for ``--format json`` and ``--format csv``.
"""

from __future__ import annotations

import sys


class Progress:
    """A tqdm bar on standard error (plain lines without tqdm), or nothing with --quiet."""

    def __init__(self, total: int, quiet: bool) -> None:
        self._bar, self._quiet, self._step, self._total = None, quiet, 0, total
        if not quiet and sys.stderr.isatty():
            try:
                from tqdm import tqdm

                self._bar = tqdm(total=total, file=sys.stderr, unit="step", leave=False, dynamic_ncols=True)
            except ImportError:
                pass

    def step(self, description: str) -> None:
        if self._bar is not None:
            self._bar.set_description_str(description)
        elif not self._quiet:
            print(f"[{self._step + 1}/{self._total}] {description}", file=sys.stderr)

    def done(self) -> None:
        self._step += 1
        if self._bar is not None:
            self._bar.update(1)

    def close(self) -> None:
        """Clear the bar; safe to call again."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
