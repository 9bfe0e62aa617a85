"""The speed harness's rows: one cell's figures, the ratios between rows, and the printed table."""
from __future__ import annotations

import dataclasses
import math
import statistics

from suite.config import Cell


def median(values):
    values = [v for v in values if math.isfinite(v)]
    return statistics.median(values) if values else float("nan")


@dataclasses.dataclass
class SpeedRow:
    cell: Cell
    suite: float  # samples/s, median
    raw: float
    stepped: float | None = None  # samples/s of the recurrence stepped in Python (stepped(), or unroll/readout)
    compiled: float | None = None  # samples/s of the raw loop under torch.compile
    data_share: float = float("nan")
    activation_mb: float = float("nan")
    peak_mb: float | None = None  # CUDA only
    attn_vs_base: float | None = None  # step time / its base model's step time (same shape): attn_rnn's overhead
    same_loss: bool = True
    monitored: float | None = None  # suite samples/s while MLflow samples system metrics every second

    @property
    def ratio(self) -> float:
        return self.suite / self.raw

    def metrics(self) -> dict:
        m = {"suite_samples_per_s": self.suite, "raw_samples_per_s": self.raw, "suite_vs_raw": self.ratio,
             "data_share": self.data_share, "activation_mb": self.activation_mb}
        if self.stepped:
            m["fused_vs_stepped"] = self.raw / self.stepped
        if self.compiled:
            m["compile_vs_eager"] = self.compiled / self.raw
        if self.peak_mb is not None:
            m["peak_mem_mb"] = self.peak_mb
        if self.attn_vs_base is not None:
            m["attn_vs_base_step_time"] = self.attn_vs_base
        if self.monitored:
            m["system_metrics_vs_off"] = self.monitored / self.suite
        return {k: v for k, v in m.items() if math.isfinite(v)}


def attach_attn_ratios(rows: list[SpeedRow]):
    """A model's step time over that of the model it builds on (base_model: attn_rnn over its GRU/LSTM core),
    on the same task shape, when both were measured."""
    from suite.models import MODELS

    by_shape = {(r.cell.model, r.cell.task, r.cell.seq_len): r for r in rows}
    for r in rows:
        model = MODELS[r.cell.model]
        if hasattr(model, "base_model"):
            base = by_shape.get((model.base_model(r.cell.model_cfg), r.cell.task, r.cell.seq_len))
            if base is not None:
                r.attn_vs_base = base.raw / r.raw  # step time ratio = inverse throughput ratio


def speed_table(rows: list[SpeedRow]) -> str:
    header = ("model", "task", "T", "suite/s", "raw/s", "suite/raw", "fused/stepped", "attn/base", "data %",
              "act MB", "compile" if any(r.compiled for r in rows) else "")
    body = []
    for r in rows:
        body.append((r.cell.model, r.cell.task, str(r.cell.seq_len), f"{r.suite:.0f}", f"{r.raw:.0f}",
                     f"{r.ratio:.3f}", f"{r.raw / r.stepped:.2f}x" if r.stepped else "-",
                     f"{r.attn_vs_base:.2f}x" if r.attn_vs_base else "-", f"{100 * r.data_share:.1f}",
                     f"{r.activation_mb:.1f}", f"{r.compiled / r.raw:.2f}x" if r.compiled else ""))
    from suite.console import aligned

    return aligned(header, body, left={0, 1})
