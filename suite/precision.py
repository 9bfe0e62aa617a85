"""What precision a network really computes in, and what `train.precision: auto` picks (suite/train.py asks here).

Under bf16 autocast, PyTorch's autocast wrapper for cuDNN's RNN kernel has cast to float16
(aten/src/ATen/cudnn/AutocastRNN.cpp registers `_cudnn_rnn` with at::kHalf), and cuDNN takes bfloat16 RNN inputs
only from 9.13 (pytorch PR #164411). So what a fused RNN computes in is probed on the stack at hand, never assumed:
`kernel_dtypes` runs the module once under the precision and reads the dtypes its one kernel op receives.
"""
from __future__ import annotations

import contextlib
import functools

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

DTYPES = {"bf16-mixed": "bfloat16", "16-mixed": "float16", "32-true": "float32"}  # what each precision computes in
KERNELS = ("_cudnn_rnn", "mkldnn_rnn_layer", "miopen_rnn")  # a fused RNN's one kernel op: cuDNN, oneDNN, MIOpen
# What auto picks on CUDA for a fused RNN whose kernel does not compute in bfloat16 there (it would run float16
# without loss scaling): fp32 with TF32 tensor cores (suite/train.py init_torch allows them for matmuls; cuDNN
# allows them by default). Not yet measured on a GPU: `make gpu-check` times it against 16-mixed and bf16-mixed
# for each fused family and says which was fastest; change it here when a GPU says otherwise.
FUSED_WITHOUT_BF16 = "32-true"
UNSCALED = torch.amp.GradScaler("cpu", enabled=False)  # does nothing: one step's code with and without 16-mixed


def autocast(precision: str, device: str, **options):
    """The autocast context a precision trains under (what Lightning's mixed precision plugins enter)."""
    if precision == "32-true":
        return contextlib.nullcontext()
    return torch.autocast(device, torch.bfloat16 if precision == "bf16-mixed" else torch.float16, **options)


def _name(dtype) -> str:
    return str(dtype).removeprefix("torch.")


class _KernelOps(TorchDispatchMode):
    """Records the dtypes of a fused RNN's kernel calls: its input, first weight and first output."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        op = func.overloadpacket.__name__
        if op in KERNELS:
            tensors = [t for a in args for t in (a if isinstance(a, list | tuple) else [a])
                       if isinstance(t, torch.Tensor)]
            first = out[0] if isinstance(out, tuple) else out
            self.calls.append({"kernel": op, "computes": _name(tensors[0].dtype), "input": _name(tensors[0].dtype),
                               "weight": _name(tensors[1].dtype), "output": _name(first.dtype)})
        return out


def kernel_dtypes(rnn: nn.RNNBase, precision: str, device: str, steps: int = 4) -> dict:
    """One forward of `rnn` on a small batch under `precision`: the kernel op that ran (None when the backend
    composes the recurrence from smaller ops, as the CPU does for GRU and RNN), the dtypes of its input, weight and
    output, and `computes`: the kernel's input dtype (the module's output dtype where no kernel op ran)."""
    rnn.to(device)  # Lightning leaves a fitted module on the CPU
    with torch.random.fork_rng(devices=_generators(device)):  # a probe draws no run's random numbers
        x = torch.randn(2, steps, rnn.input_size, device=device)
    with torch.no_grad(), autocast(precision, device), _KernelOps() as ops:
        y = rnn(x)[0]
    if ops.calls:
        return ops.calls[0]
    return {"kernel": None, "computes": _name(y.dtype), "input": None, "weight": None, "output": _name(y.dtype)}


PROBES = {"LSTM": nn.LSTM, "GRU": nn.GRU, "RNN_TANH": nn.RNN,
          "RNN_RELU": functools.partial(nn.RNN, nonlinearity="relu")}  # nn.RNNBase.mode -> a module of that kernel


@functools.cache
def fused_takes_bf16(mode: str, device: str) -> bool:
    """Whether a fused RNN of this kernel (nn.RNNBase.mode) computes in bfloat16 under bf16 autocast here."""
    with torch.random.fork_rng(devices=_generators(device)):  # probed between a cell's seeding and its init
        probe = PROBES[mode](8, 8, batch_first=True).to(device)
        return kernel_dtypes(probe, "bf16-mixed", device)["computes"] == "bfloat16"


def _generators(device: str) -> list:
    return [torch.cuda.current_device()] if device == "cuda" else []


@functools.cache
def fused_modes(model: str) -> tuple[str, ...]:
    """The fused RNN kernels (nn.RNNBase.mode) a registered model's backbone runs, read off one built on the
    meta device (no memory, no init)."""
    from suite.models import MODELS

    cls = MODELS[model]
    with torch.device("meta"):
        backbone = cls(1, cls.Config())
    return tuple(sorted({m.mode for m in backbone.modules() if isinstance(m, nn.RNNBase)}))


def auto(model: str, device: str) -> str:
    """`train.precision: auto`: 32-true off CUDA; on CUDA bf16-mixed, except a model with a fused RNN whose kernel
    does not compute in bfloat16 here (FUSED_WITHOUT_BF16)."""
    if device != "cuda":
        return "32-true"
    if all(fused_takes_bf16(mode, device) for mode in fused_modes(model)):
        return "bf16-mixed"
    return FUSED_WITHOUT_BF16


class ComputeDtypes:
    """The dtypes a network's layers output at its first forward (hooks removed after it): `summary()`, e.g.
    "LSTM float16 · Linear bfloat16", is what every run records as its tag `compute_dtypes`."""

    def __init__(self, net: nn.Module):
        self.seen: dict[str, set[str]] = {}
        self.hooks = [m.register_forward_hook(self._record) for m in net.modules()
                      if isinstance(m, nn.Linear | nn.RNNBase)]
        self.hooks.append(net.register_forward_hook(lambda *_: self.remove()))  # after the whole first forward

    def _record(self, module, inputs, output):
        first = output[0] if isinstance(output, tuple) else output
        kind = module.mode if isinstance(module, nn.RNNBase) else "Linear"
        self.seen.setdefault(kind, set()).add(_name(first.dtype))

    def remove(self):
        for hook in self.hooks:
            hook.remove()
        self.hooks = []

    def summary(self) -> str:
        kinds = sorted(self.seen, key=lambda kind: (kind == "Linear", kind))  # the recurrence first
        return " · ".join(f"{kind} {'/'.join(sorted(self.seen[kind]))}" for kind in kinds) or "unknown"
