"""One thin LightningModule for every model and task: head, loss, metric and optimizer."""
from __future__ import annotations

import math

import lightning.pytorch as pl
import torch

from suite.compat import FastHookNames
from suite.models import ModelConfig, Network
from suite.precision import UNSCALED


class SeqModule(FastHookNames, pl.LightningModule):
    """Wraps a Network; the task's output kind (tasks/base.py: OUTPUT_KINDS) gives the loss and the metric.

    `train_cfg` is a TrainConfig: optimizer ("adam"/"adamw"), lr, weight_decay, grad_clip.

    Each training_step call takes a group of batches and makes one optimizer step per batch (like
    Keras' steps_per_execution), with the plain torch optimizer: the Trainer spends ~0.3 ms per call
    and per LightningOptimizer step on hooks, over 5% of a short step (measured by `rnnbench speed`).
    So trainer.global_step does not count these steps, and under 16-mixed the loss is scaled here, by the
    precision plugin's own GradScaler (Lightning scales only through its LightningOptimizer).
    Sums are kept on the device and read once an epoch, so no training step waits on the host.
    """

    def __init__(self, model: str, cfg: ModelConfig, task, train_cfg):
        super().__init__()
        self.automatic_optimization = False
        self.outputs, self.scored = task.outputs, task.scored_steps
        self.net = Network(model, cfg, task.input_size, task.n_outputs, every_step=self.outputs.every_step,
                           steps=task.input_steps)
        self.train_cfg = train_cfg
        self.metric = self.outputs.metric
        self.sums: dict[str, torch.Tensor] = {}  # on the device
        self.counts: dict[str, int] = {}
        self.steps_done = 0  # optimizer steps (trainer.global_step does not see them, see above)

    def forward(self, x):
        return self.net(x)

    def model_step(self, batch, metric: bool = True):
        """Loss (mean over the batch) and the metric's sum over the batch (None when not asked for)."""
        x, y = batch
        out = self(x)
        return self.outputs.loss(out, y), self.outputs.score(out, y, self.scored) if metric else None

    @torch.no_grad()
    def measure(self, batches) -> dict[str, float]:
        """{"loss", metric}: means over `batches`, outside the Trainer's loops (the test set between epochs), in
        eval mode; the caller's mode comes back after."""
        was, n, sums = self.training, 0, {}
        self.eval()
        try:
            for batch in batches:
                loss, metric = self.model_step(batch)
                for key, value in (("loss", loss.detach() * len(batch[0])), (self.metric, metric)):
                    sums[key] = sums.get(key, 0.0) + value.detach()
                n += len(batch[0])
        finally:
            self.train(was)
        return {key: float(value) / n for key, value in sums.items()}

    def _accumulate(self, stage, loss, metric, n):
        for key, value in ((f"{stage}_loss", loss.detach() * n), (f"{stage}_{self.metric}", metric)):
            if value is not None:
                self.sums[key] = self.sums[key] + value.detach() if key in self.sums else value.detach()
        self.counts[stage] = self.counts.get(stage, 0) + n

    def _publish(self, stage):
        """Log the epoch's means (the one host read per epoch) and reset the sums."""
        n = self.counts.pop(stage, 0)
        for key in (f"{stage}_loss", f"{stage}_{self.metric}"):
            value = self.sums.pop(key, None)
            if n and value is not None:
                mean = float(value) / n
                if not math.isfinite(mean):  # a diverged run stops here rather than train on NaNs
                    raise FloatingPointError(f"{key} became {mean} in epoch {self.current_epoch}")
                self.log(key, mean)

    def training_step(self, batches, batch_idx):
        opt, clip = self.optimizers(use_pl_optimizer=False), self.train_cfg.grad_clip
        plugin = getattr(self._trainer, "precision_plugin", None)  # no Trainer when eta.py times a step
        scaler = getattr(plugin, "scaler", None) or UNSCALED  # the plugin has a GradScaler under 16-mixed only
        for batch in batches:
            loss, _ = self.model_step(batch, metric=False)  # only the train loss is reported
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if clip:
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(self.parameters(), clip)
            scaler.step(opt)
            scaler.update()
            self._accumulate("train", loss, None, len(batch[0]))
        self.steps_done += len(batches)

    def validation_step(self, batch, batch_idx):
        self._accumulate("val", *self.model_step(batch), len(batch[0]))

    def test_step(self, batch, batch_idx):
        self._accumulate("test", *self.model_step(batch), len(batch[0]))

    def on_validation_epoch_end(self):
        # Validation closes each training epoch, so the epoch's train loss is complete here and
        # callbacks' on_train_epoch_end (which Lightning calls before this module's) sees both.
        self._publish("train")
        self._publish("val")

    def on_train_epoch_end(self):
        self._publish("train")  # epochs without validation

    def on_test_epoch_end(self):
        self._publish("test")

    def on_save_checkpoint(self, checkpoint):
        checkpoint["steps_done"] = self.steps_done

    def on_load_checkpoint(self, checkpoint):
        self.steps_done = checkpoint.get("steps_done", 0)

    def configure_optimizers(self):
        t = self.train_cfg
        opt = torch.optim.AdamW if t.optimizer == "adamw" else torch.optim.Adam
        return opt(self.parameters(), lr=t.lr, weight_decay=t.weight_decay)
