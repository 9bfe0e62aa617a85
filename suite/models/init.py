"""Initialisation schemes for the recurrent layers, each from its source. A model lists those it supports in its
Config's `init` field (the first of them its default), and Network applies the one chosen.

torch       PyTorch's default: every weight and bias of nn.RNN/LSTM/GRU U(-1/sqrt(H), 1/sqrt(H)); the head,
            nn.Linear's default.
keras       Keras 3's default for SimpleRNN/LSTM/GRU (keras.io, layers API): input weights Glorot-uniform,
            recurrent weights orthogonal, biases zero, LSTM forget-gate bias 1 (unit_forget_bias=True); the head
            and other linear layers Glorot-uniform with zero bias, as keras.layers.Dense.
orthogonal  each gate's recurrent matrix orthogonal (Saxe et al. 2014), every other weight and bias as torch.
identity    the recurrent matrix the identity, input weights N(0, 0.001^2), biases zero: the iRNN of Le, Jaitly
            & Hinton 2015 (its settings as Keras' examples/mnist_irnn.py writes them).
chrono      keras, then the gate biases of Tallec & Ollivier 2018 from the task's length T: LSTM forget bias
            log U[1, T-1] and input bias its negative; GRU (PyTorch's z keeps the old state, as an LSTM's forget
            gate does) z bias log U[1, T-1]. Time constants then spread over [2, T].
"""
from __future__ import annotations

import math

import torch
from torch import nn

SCHEMES = ("torch", "keras", "orthogonal", "identity", "chrono")
GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}  # blocks of H rows in weight_ih/hh, PyTorch's order
FORGET = {"LSTM": 1, "GRU": 1}  # the block that keeps the old state: LSTM (i, f, g, o) and GRU (r, z, n)


@torch.no_grad()
def initialise(net: nn.Module, scheme: str, steps: int):
    """Apply `scheme` to every recurrent layer of `net` (and, for keras, its linear layers); `steps`: the task's T."""
    if scheme == "torch":
        return
    for module in net.modules():
        if isinstance(module, nn.RNNBase):
            for layer in range(module.num_layers):
                _layer(module, layer, scheme, steps)
        elif isinstance(module, nn.Linear) and scheme in ("keras", "chrono"):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def _layer(rnn: nn.RNNBase, layer: int, scheme: str, steps: int):
    w_ih, w_hh = getattr(rnn, f"weight_ih_l{layer}"), getattr(rnn, f"weight_hh_l{layer}")
    b_ih, b_hh = getattr(rnn, f"bias_ih_l{layer}", None), getattr(rnn, f"bias_hh_l{layer}", None)
    H, mode = rnn.hidden_size, rnn.mode
    if scheme in ("keras", "chrono"):
        nn.init.xavier_uniform_(w_ih)  # the stacked kernel, as Keras sees it: fan_out = gates x H
        nn.init.orthogonal_(w_hh)  # orthonormal columns of the stacked (gates x H, H) matrix
        _zero(b_ih, b_hh)
        if mode == "LSTM":
            b_ih[H:2 * H] = 1.0
    elif scheme == "orthogonal":
        for g in range(GATES[mode]):
            nn.init.orthogonal_(w_hh[g * H:(g + 1) * H])
    elif scheme == "identity":
        nn.init.normal_(w_ih, 0.0, 0.001)
        for g in range(GATES[mode]):
            w_hh[g * H:(g + 1) * H].copy_(torch.eye(H))
        _zero(b_ih, b_hh)
    if scheme == "chrono":
        if mode not in FORGET:
            raise ValueError(f"model.init: chrono sets gate biases; {mode} has no gates")
        keep = torch.log(torch.empty(H).uniform_(1.0, max(steps - 1.0, 1.0 + 1e-6)))
        b_ih[FORGET[mode] * H:(FORGET[mode] + 1) * H] = keep
        if mode == "LSTM":
            b_ih[0:H] = -keep  # the input gate opens as much as the forget gate closes


def _zero(*biases):
    for b in biases:
        if b is not None:
            nn.init.zeros_(b)


def chrono_range(steps: int) -> tuple[float, float]:
    """The interval chrono draws its gate biases from, for tests and docs."""
    return 0.0, math.log(max(steps - 1, 1))
