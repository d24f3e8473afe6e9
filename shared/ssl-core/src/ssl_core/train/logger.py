"""Run logs: ``log.csv``, TensorBoard events under ``tb/`` and ``plots/loss.png``."""

from __future__ import annotations

import csv
import math
import warnings
from pathlib import Path


class RunLogger:
    """Writes one row per logged step to ``log.csv`` and the same scalars to TensorBoard.

    Only the main process should log (pass ``enabled=False`` elsewhere). When resuming from step ``s``,
    rows after ``s`` (written after the last checkpoint by the interrupted run) are dropped from the CSV
    and purged from TensorBoard, so the logs follow one trajectory.

    Args:
        run_dir: the run folder.
        enabled: write anything at all.
        resume_step: the step of the checkpoint being resumed, or ``None`` for a new run.
    """

    def __init__(self, run_dir: str | Path, enabled: bool = True, resume_step: int | None = None) -> None:
        self.run_dir, self.enabled = Path(run_dir), enabled
        self.csv_path = self.run_dir / "log.csv"
        self._fields: list[str] | None = None
        self._dropped: set[str] = set()
        self._tb = None
        if not enabled:
            return
        if resume_step is not None and self.csv_path.exists():
            with self.csv_path.open(newline="") as f:
                rows = list(csv.DictReader(f))
            if rows:
                self._fields = list(rows[0].keys())
                kept = [r for r in rows if int(r["step"]) <= resume_step]
                with self.csv_path.open("w", newline="") as f:
                    w = csv.DictWriter(f, self._fields)
                    w.writeheader()
                    w.writerows(kept)
        elif self.csv_path.exists():
            self.csv_path.unlink()
        from torch.utils.tensorboard import SummaryWriter

        purge = None if resume_step is None else resume_step + 1
        self._tb = SummaryWriter(str(self.run_dir / "tb"), purge_step=purge)

    def log(self, step: int, values: dict[str, float]) -> None:
        """Record the scalars of ``step`` (``values`` must include ``loss``)."""
        if not self.enabled:
            return
        row = {"step": step, **{k: float(v) for k, v in values.items()}}
        new = not self.csv_path.exists()
        if self._fields is None:
            self._fields = list(row)
        extra = set(row) - set(self._fields) - self._dropped
        if extra:
            self._dropped |= extra
            msg = f"log keys {sorted(extra)} appeared after the first row; they go to TensorBoard only"
            warnings.warn(msg, stacklevel=2)
        with self.csv_path.open("a", newline="") as f:
            w = csv.DictWriter(f, self._fields, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow(row)
        for k, v in row.items():
            if k != "step":
                self._tb.add_scalar(f"train/{k}", v, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None

    def plot_loss(self) -> Path | None:
        """Draw ``plots/loss.png`` from ``log.csv`` (loss per step and a moving average)."""
        if not self.enabled or not self.csv_path.exists():
            return None
        with self.csv_path.open(newline="") as f:
            rows = list(csv.DictReader(f))
        pts = [(int(r["step"]), float(r["loss"])) for r in rows if r.get("loss") and math.isfinite(float(r["loss"]))]
        if not pts:
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np

        steps, losses = np.asarray(pts).T
        fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
        ax.plot(steps, losses, lw=0.8, alpha=0.4, label="loss")
        win = max(1, len(losses) // 20)
        if win > 1:
            smooth = np.convolve(losses, np.ones(win) / win, mode="valid")
            ax.plot(steps[win - 1 :], smooth, lw=1.8, label=f"mean of {win} steps")
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.set_title(self.run_dir.name)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        out = self.run_dir / "plots" / "loss.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out)
        plt.close(fig)
        return out
