"""Pairs left and right messages with exactly equal stamps (message_filters may not exist).

Pure Python, no ROS import: keys are `(sec, nanosec)` tuples. Each side keeps at most
`max_pending` unpaired messages; older ones are evicted and counted as unmatched. A repeat of the
newest paired stamp is dropped; an older stamp means time went back (a looped bag or player), so
the pending messages are cleared and pairing starts again.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

StampKey = tuple[int, int]


class ExactStampSync:
    def __init__(self, max_pending: int = 10):
        self.max_pending = max_pending
        self._pending: dict[str, OrderedDict[StampKey, Any]] = {
            "left": OrderedDict(),
            "right": OrderedDict(),
        }
        self._last_paired: StampKey | None = None
        self.unmatched = 0  # messages evicted or dropped without a partner

    def add(self, side: str, key: StampKey, msg: Any) -> tuple[Any, Any] | None:
        """Offer one message; returns (left, right) when this completes a pair, else None."""
        other = "right" if side == "left" else "left"
        if self._last_paired is not None and key == self._last_paired:
            self.unmatched += 1
            return None
        if self._last_paired is not None and key < self._last_paired:
            self.reset()
        partner = self._pending[other].pop(key, None)
        if partner is None:
            mine = self._pending[side]
            if key in mine:
                self.unmatched += 1  # a repeated stamp on one side replaces the earlier one
            mine[key] = msg
            while len(mine) > self.max_pending:
                mine.popitem(last=False)
                self.unmatched += 1
            return None
        self._last_paired = key
        for pending in self._pending.values():  # everything older can never pair any more
            for old in [k for k in pending if k < key]:
                del pending[old]
                self.unmatched += 1
        return (msg, partner) if side == "left" else (partner, msg)

    def reset(self) -> None:
        for pending in self._pending.values():
            pending.clear()
        self._last_paired = None
