"""One redrawn line on a terminal stream, for the command line's progress bars."""

from __future__ import annotations

from typing import TextIO


class TerminalLine:
    """Redraws one line of ``stream`` in place (``\\r``) and ends it on :meth:`close`.

    >>> import io
    >>> stream = io.StringIO()
    >>> line = TerminalLine(stream)
    >>> line.show("a"); line.show("b"); line.close()
    >>> stream.getvalue()
    '\\ra\\rb\\n'
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.shown = False

    def show(self, text: str) -> None:
        self.stream.write(f"\r{text}")
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        """Ends the line (if anything was drawn)."""
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()
            self.shown = False


def bar(fraction: float, width: int) -> str:
    """``[####------]`` for a fraction between 0 and 1.

    >>> bar(0.5, 10)
    '[#####-----]'
    """
    filled = int(width * min(max(fraction, 0.0), 1.0))
    return "[" + "#" * filled + "-" * (width - filled) + "]"
