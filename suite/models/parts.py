"""Pieces the modern recurrences share: the linear scan they train with, the short causal convolution before it,
RMS normalisation and the stack of blocks they are built of. Plain PyTorch (no Triton, no CUDA kernels), written
once here."""
from __future__ import annotations

import torch
from torch import nn


def scan_log_depth(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """h_t = a_t ⊙ h_{t-1} + b_t along dim 1 in log2 T vectorised steps (Hillis & Steele 1986: the pairs (a, b)
    compose associatively), outside autograd; each right-hand side is computed before it is written."""
    h, a, d, T = b.clone(), a.clone(), 1, b.shape[1]
    while d < T:
        h[:, d:] += a[:, d:] * h[:, :-d]
        if 2 * d < T:
            a[:, d:] = a[:, d:] * a[:, :-d]
        d *= 2
    return h


def scan_steps(a: torch.Tensor, b: torch.Tensor, reverse: bool = False) -> torch.Tensor:
    """The same recurrence step by step (T small steps, O(T) work), outside autograd; `reverse`: from the last
    step back to the first (h_t = a_t ⊙ h_{t+1} + b_t)."""
    h, state = torch.empty_like(b), torch.zeros_like(b[:, 0])
    for t in reversed(range(b.shape[1])) if reverse else range(b.shape[1]):
        state = torch.addcmul(b[:, t], a[:, t], state)
        h[:, t] = state
    return h


def _scan(a, b, reverse: bool = False):
    """Log depth on a GPU, where its T log T work runs in parallel; steps on a CPU, whose cores have no
    parallelism for it to use (measured on 2 cores: 10x faster for Mamba's (B, T, D, N) states at T=48, as fast
    for a (B, T, D) one); both compute the same (tests/test_recurrences.py)."""
    if not b.is_cuda:
        return scan_steps(a, b, reverse)
    return scan_log_depth(a.flip(1), b.flip(1)).flip(1) if reverse else scan_log_depth(a, b)


class _LinearScan(torch.autograd.Function):
    """The scan with its own backward, itself a scan run backwards in time (as Mamba's fused kernel does it):
    g_t = ∂L/∂h_t + a_{t+1} g_{t+1}, ∂L/∂b_t = g_t, ∂L/∂a_t = g_t h_{t-1}. Autograd through the vectorised steps
    would store and zero-fill every intermediate instead."""

    @staticmethod
    def forward(ctx, a, b):
        h = _scan(a.expand_as(b), b)
        ctx.save_for_backward(a, h)
        return h

    @staticmethod
    def backward(ctx, grad):
        a, h = ctx.saved_tensors
        after = torch.zeros_like(h)
        after[:, :-1] = a.expand_as(h)[:, 1:].conj()  # conj: the complex gradient convention (no-op when real)
        g = _scan(after, grad, reverse=True)
        before = torch.zeros_like(h)
        before[:, 1:] = h[:, :-1].conj()
        return (g * before).sum_to_size(a.shape), g


def linear_scan(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """h_t = a_t ⊙ h_{t-1} + b_t for t = 1..T (h_0 = 0), a and b: (B, T, ...) (a broadcastable to b), outside
    autograd (its backward is the same scan, reversed): no graph of T steps."""
    return _LinearScan.apply(a, b)


def log_scan(log_a: torch.Tensor, log_b: torch.Tensor) -> torch.Tensor:
    """The same recurrence for positive a and b, computed in log space (Heinsen 2023, "Efficient parallelization
    of a ubiquitous sequential computation"): h_t = exp(a*_t + logcumsumexp(log b - a*)_t), a* = cumsum log a.
    Stable over long sequences where the products of a underflow."""
    a_star = torch.cumsum(log_a, dim=1)
    return torch.exp(a_star + torch.logcumsumexp(log_b - a_star, dim=1))


class CausalConv(nn.Module):
    """A depthwise convolution over time that sees only the current and the `width - 1` earlier steps (the short
    convolution of Mamba, Hawk and Gated DeltaNet); (B, T, C) -> (B, T, C)."""

    def __init__(self, channels: int, width: int = 4):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, width, groups=channels, padding=width - 1)

    def forward(self, x):
        return self.conv(x.transpose(1, 2))[..., : x.shape[1]].transpose(1, 2)


class RMSNorm(nn.Module):
    """x / rms(x) * weight (Zhang & Sennrich 2019), as nn.RMSNorm does from torch 2.4 on; torch 2.3 is supported."""

    def __init__(self, width: int, eps: float = 1e-6):
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(width)), eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class BlockStack(nn.Module):
    """A linear encoder, `num_layers` residual blocks (each made by `block()`), a final norm: the shape every
    model built of blocks shares. `below_top(x)` is the top block's input, where an `unroll` starts; `_top`
    holds what it keeps of the top block for `readout`."""

    def __init__(self, input_size: int, cfg, block, norm: nn.Module):
        super().__init__()
        self.encoder = nn.Linear(input_size, cfg.hidden_size)
        self.blocks = nn.ModuleList(block() for _ in range(cfg.num_layers))
        self.norm = norm
        self._top = None

    def forward(self, x):  # (B, T, input) -> (B, T, hidden)
        h = self.encoder(x)
        for block in self.blocks:
            h = block(h)
        return self.norm(h)

    def below_top(self, x):
        h = self.encoder(x)
        for block in self.blocks[:-1]:
            h = block(h)
        return h
