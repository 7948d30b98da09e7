"""The one progress-bar helper (tqdm to stderr; silent when not a terminal unless forced)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def progress(items: Iterable[T], desc: str, total: int | None = None, enable: bool | None = None):
    """Wrap `items` in a progress bar on stderr. `enable=None`: only when stderr is a terminal."""
    if enable is None:
        enable = sys.stderr.isatty()
    if not enable:
        return _plain(items)
    from tqdm import tqdm

    return tqdm(items, desc=desc, total=total, file=sys.stderr, dynamic_ncols=True, leave=False)


def _plain(items: Iterable[T]) -> Iterator[T]:
    yield from items
