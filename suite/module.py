"""One thin LightningModule for every model and task: head, loss, metric and optimizer."""
from __future__ import annotations

import lightning.pytorch as pl
import torch
import torch.nn.functional as F

from suite.models import ModelConfig, Network

class SeqModule(pl.LightningModule):
    """Wraps a Network; the task's output kind picks the loss and the metric (acc or mse).

    `optim` is anything with optimizer ("adam"/"adamw"), lr and weight_decay (a TrainConfig).

    Sums are kept on the device and read once an epoch, so no training step waits on the host.
    """

    def __init__(self, model: str, cfg: ModelConfig, task, optim):
        super().__init__()
        self.kind, self.scored = task.output_kind, task.scored_steps
        self.net = Network(model, cfg, task.input_size, task.n_outputs, every_step=self.kind == "class_every")
        self.optim = optim
        self.metric = "mse" if self.kind == "regress_last" else "acc"
        self.sums: dict[str, torch.Tensor] = {}  # on the device
        self.counts: dict[str, int] = {}

    def forward(self, x):
        return self.net(x)

    def model_step(self, batch):
        """Loss (mean over the batch) and the metric's sum over the batch."""
        x, y = batch
        out = self(x)
        if self.kind == "regress_last":
            sq = (out.float() - y).pow(2).mean(-1)
            return sq.mean(), sq.sum()
        if self.kind == "class_every":
            loss = F.cross_entropy(out.flatten(0, 1).float(), y.flatten())
            if self.scored:
                out, y = out[:, -self.scored:], y[:, -self.scored:]
            return loss, (out.argmax(-1) == y).float().mean(-1).sum()
        return F.cross_entropy(out.float(), y), (out.argmax(-1) == y).float().sum()

    def _accumulate(self, stage, loss, metric, n):
        for key, value in ((f"{stage}_loss", loss.detach() * n), (f"{stage}_{self.metric}", metric.detach())):
            self.sums[key] = self.sums[key] + value if key in self.sums else value
        self.counts[stage] = self.counts.get(stage, 0) + n

    def _publish(self, stage, metric=True):
        """Log the epoch's means (the one host read per epoch) and reset the sums."""
        n = self.counts.pop(stage, 0)
        for key in (f"{stage}_loss", f"{stage}_{self.metric}"):
            value = self.sums.pop(key, None)
            if n and value is not None and (metric or key.endswith("_loss")):
                self.log(key, value / n)

    def training_step(self, batch, batch_idx):
        loss, metric = self.model_step(batch)
        self._accumulate("train", loss, metric, len(batch[0]))
        return loss

    def validation_step(self, batch, batch_idx):
        self._accumulate("val", *self.model_step(batch), len(batch[0]))

    def test_step(self, batch, batch_idx):
        self._accumulate("test", *self.model_step(batch), len(batch[0]))

    def on_validation_epoch_end(self):
        # Validation closes each training epoch, so the epoch's train loss is complete here and
        # callbacks' on_train_epoch_end (which Lightning calls before this module's) sees both.
        self._publish("train", metric=False)
        self._publish("val")

    def on_train_epoch_end(self):
        self._publish("train", metric=False)  # epochs without validation

    def on_test_epoch_end(self):
        self._publish("test")

    def configure_optimizers(self):
        opt = torch.optim.AdamW if self.optim.optimizer == "adamw" else torch.optim.Adam
        return opt(self.parameters(), lr=self.optim.lr, weight_decay=self.optim.weight_decay)
