"""Names from a model file (nodes, ops, outputs, the file's own name) or a planted result file, made safe to print.

A name may hold any character: ESC starts a terminal escape sequence (``\\x1b]0;title\\x07`` retitles the window,
``\\x1b[2J`` clears it), a C1 control does the same on some terminals, and a bidi override shows text in another
order than it is stored. Everything bench prints to a terminal or writes to a text file (summary.md, CSV, compare's
markdown) passes such names through ``printable``, which shows those characters escaped and leaves the rest alone::

    >>> printable("conv\\x1b[2J")
    'conv\\\\x1b[2J'
"""

from __future__ import annotations

import re

# C0 controls (newline and tab too: a name is one line), DEL, C1 controls, and the bidi marks and overrides
# (U+061C, U+200E/F, U+202A-E, U+2066-9) that reorder what a reader sees
_UNPRINTABLE = [*range(0x20), *range(0x7F, 0xA0), 0x61C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_ESCAPED = {c: f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}" for c in _UNPRINTABLE}
# a search is ~10x faster than translate on the usual name, which has none (a report writes millions of cells)
_ANY = re.compile("[" + "".join(re.escape(chr(c)) for c in _UNPRINTABLE) + "]")


def printable(text: str) -> str:
    """``text`` with control characters, C1 controls and bidi overrides shown as ``\\x1b`` / ``\\u202e``."""
    return text.translate(_ESCAPED) if _ANY.search(text) else text
