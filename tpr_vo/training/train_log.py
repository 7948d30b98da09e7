"""Training log kept across resumed chunks: rows in log.csv and log.json, loss plot loss.png."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from tpr_vo.atomic import atomic_path, write_text_atomic

PLOTTED = ("total", "pred", "rep", "peaky", "nce", "warm_desc")


class TrainLog:
    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir)
        self.json_path = self.out_dir / "log.json"
        self.rows: list[dict[str, Any]] = []
        if self.json_path.is_file():
            self.rows = json.loads(self.json_path.read_text())["rows"]

    def truncate(self, step: int) -> None:
        """Drop rows after `step` (a resumed run continues from its checkpoint's step)."""
        self.rows = [r for r in self.rows if r["step"] <= step]

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append({k: (float(v) if isinstance(v, float) else v) for k, v in row.items()})

    def last(self, key: str) -> float | None:
        for row in reversed(self.rows):
            if row.get(key) is not None:
                return row[key]
        return None

    def write(self) -> None:
        keys: list[str] = []
        for row in self.rows:
            keys += [k for k in row if k not in keys]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys)
        writer.writeheader()
        writer.writerows(self.rows)
        write_text_atomic(self.out_dir / "log.csv", buf.getvalue())
        write_text_atomic(self.json_path, json.dumps({"rows": self.rows}, indent=1))
        self.plot()

    def plot(self) -> None:
        if not self.rows:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for key in PLOTTED:
            pts = [(r["step"], r[key]) for r in self.rows if _finite(r.get(key))]
            if pts:
                axes[0].plot(*zip(*pts), label=key, lw=1)
        axes[0].set_xlabel("step")
        axes[0].set_ylabel("loss")
        axes[0].set_yscale("log")
        axes[0].legend(fontsize=8)
        pts = [(r["step"], r["mma3"]) for r in self.rows if _finite(r.get("mma3"))]
        if pts:
            axes[1].plot(*zip(*pts), "o-")
        axes[1].set_xlabel("step")
        axes[1].set_ylabel("MMA@3 (eval set)")
        fig.tight_layout()
        with atomic_path(self.out_dir / "loss.png") as tmp:
            fig.savefig(tmp, dpi=90, format="png")
        plt.close(fig)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0
