"""The long-dependency probes against their published definitions (positions, targets, the blind predictor's
loss), and the modern baselines: the LRU's parallel scan equals its step-by-step recurrence."""
import math

import pytest
import torch
import torch.nn.functional as F

from tasks.assoc_recall import AssocRecall, AssocRecallConfig
from tasks.listops import VOCAB, ListOps, ListOpsConfig
from tasks.selective_copy import SelectiveCopy, SelectiveCopyConfig
from tasks.temporal_order import B, E, TemporalOrder, TemporalOrderConfig, X, Y

G = torch.Generator


def blind_every(task, y, scored_logits):
    """Cross-entropy of a predictor that knows where answers are due (blanks elsewhere) but not what they are."""
    n, steps = y.shape
    logits = torch.full((n, steps, task.n_outputs), -1e4)
    logits[:, : steps - task.scored_steps, 0] = 0
    logits[:, steps - task.scored_steps:] = scored_logits
    return F.cross_entropy(logits.flatten(0, 1), y.flatten()).item()


def test_selective_copy_scatters_the_symbols_and_asks_for_them_in_order():
    task = SelectiveCopy(SelectiveCopyConfig(seq_len=30, recall=6, symbols=5))
    x, y = task.make_batch(512, G().manual_seed(0), "cpu")
    tokens = x.argmax(-1)
    assert x.shape == (512, 30 + 6, 7) and torch.equal(x.sum(-1), torch.ones(512, 36))
    marked = (tokens[:, :30] > 0) & (tokens[:, :30] <= 5)
    assert torch.equal(marked.sum(1), torch.full((512,), 6))  # K symbols among blanks
    assert (tokens[:, 30:] == 6).all()  # then K markers (s4's copying.py, variable=True)
    for row in range(512):
        assert tokens[row, :30][marked[row]].tolist() == y[row, -6:].tolist()  # recalled in order
    assert (y[:, :30] == 0).all()
    first = marked.float().argmax(1)
    assert len(set(first.tolist())) > 10  # the positions move: no fixed lag solves it
    scored = torch.zeros(task.n_outputs)
    scored[0] = -1e4  # uniform over the symbols at the recall steps
    assert math.isclose(blind_every(task, y, scored), task.chance_loss(), rel_tol=1e-4)
    assert task.key_steps(x[:2]) == [marked[i].nonzero().flatten().tolist() for i in range(2)]


def test_assoc_recall_answers_each_query_with_its_keys_value():
    task = AssocRecall(AssocRecallConfig(seq_len=16, queries=3, values=6))
    x, y = task.make_batch(256, G().manual_seed(0), "cpu")
    tokens, P = x.argmax(-1), task.pairs
    assert x.shape == (256, 2 * P + 1 + 3, task.input_size) and P == 8
    keys, vals = tokens[:, 0:2 * P:2] - 1, tokens[:, 1:2 * P:2] - 1 - P
    assert torch.equal(keys.sort(1).values, torch.arange(P).expand(256, P))  # every key once
    assert (tokens[:, 2 * P] == task.input_size - 1).all()  # the separator
    for row in range(256):
        pairs = dict(zip(keys[row].tolist(), vals[row].tolist(), strict=True))
        asked = (tokens[row, -3:] - 1).tolist()
        assert (y[row, -3:] - 1).tolist() == [pairs[k] for k in asked]
    scored = torch.zeros(task.n_outputs)
    scored[0] = -1e4
    assert math.isclose(blind_every(task, y, scored), task.chance_loss(), rel_tol=1e-4)


@pytest.mark.parametrize("relevant", [2, 3])
def test_temporal_order_puts_x_and_y_in_their_windows_and_classifies_the_order(relevant):
    T = 100
    task = TemporalOrder(TemporalOrderConfig(seq_len=T, relevant=relevant))
    x, y = task.make_batch(1024, G().manual_seed(0), "cpu")
    tokens = x.argmax(-1)
    assert (tokens[:, 0] == B).all() and (tokens[:, -1] == E).all()
    for row in range(1024):
        where = ((tokens[row] == X) | (tokens[row] == Y)).nonzero().flatten().tolist()
        assert len(where) == relevant
        assert 10 <= where[0] < 20 and 50 <= where[1] < 60 and (relevant == 2 or 80 <= where[2] < 90)
        label = 0
        for step in where:
            label = 2 * label + int(tokens[row, step] == Y)
        assert y[row].item() == label
    assert set(y.tolist()) == set(range(2 ** relevant))
    frequencies = torch.bincount(y, minlength=task.n_outputs).float() / len(y)
    blind = F.cross_entropy(torch.zeros(len(y), task.n_outputs), y).item()  # uniform guess
    assert math.isclose(blind, task.chance_loss(), rel_tol=1e-6) and (frequencies > 0.7 / task.n_outputs).all()


def _reference_value(tokens):
    """ListOps evaluated recursively, as LRA's generator defines the operators."""
    def node(i):
        if tokens[i] not in ("MIN", "MAX", "MED", "SM"):
            return int(tokens[i]), i + 1
        op, args, i = tokens[i], [], i + 1
        while tokens[i] != "]":
            v, i = node(i)
            args.append(v)
        result = {"MIN": min(args), "MAX": max(args), "SM": sum(args) % 10,
                  "MED": sorted(args)[(len(args) - 1) // 2] if len(args) % 2 else
                  int((sorted(args)[len(args) // 2 - 1] + sorted(args)[len(args) // 2]) / 2)}[op]
        return result, i + 1
    return node(0)[0]


def test_listops_labels_are_the_expressions_values_and_respect_the_grammar():
    task = ListOps(ListOpsConfig(seq_len=60, min_len=8, n_train=300, n_eval=50))
    splits = task.splits(0, 0, "cpu")
    x, y = splits["test"]
    for row in range(50):
        ids = x[row].argmax(-1).tolist()
        tokens = [VOCAB[i] for i in ids if i != 0]
        assert 8 <= len(tokens) <= 60 and ids[-1] != 0  # left-padded: every expression ends at the last step
        assert tokens.count("]") == sum(t in ("MIN", "MAX", "MED", "SM") for t in tokens)
        assert y[row].item() == _reference_value(tokens)
    labels = splits["train"][1]
    p = torch.bincount(labels, minlength=10).float() / len(labels)
    blind = -(p[p > 0] * p[p > 0].log()).sum().item()  # always the label frequencies
    assert math.isclose(blind, task.chance_loss(), rel_tol=1e-5)


def test_the_lru_scan_equals_its_step_by_step_recurrence():
    from suite.models.lru import LRU, LRUConfig, scan

    torch.manual_seed(0)
    lam = torch.polar(torch.rand(7) * 0.3 + 0.69, torch.rand(7) * 6.28)
    u = torch.randn(3, 45, 7, dtype=torch.complex64)
    state, steps = torch.zeros(3, 7, dtype=torch.complex64), []
    for t in range(45):
        state = lam * state + u[:, t]
        steps.append(state)
    assert torch.allclose(scan(lam, u), torch.stack(steps, 1), atol=1e-5)
    net = LRU(4, LRUConfig(hidden_size=16, num_layers=2)).eval()
    x = torch.randn(2, 33, 4)
    assert torch.allclose(net.readout(torch.stack(net.unroll(x), 1)), net(x), atol=1e-5)  # unroll = the scan
    modulus = net.blocks[0].lru.lam().abs()
    assert (modulus >= 0.9 - 1e-6).all() and (modulus <= 0.999 + 1e-6).all()  # on the ring the paper starts on


def test_parity_is_the_count_of_ones_mod_two_at_the_last_step():
    from tasks.parity import Parity, ParityConfig

    task = Parity(ParityConfig(seq_len=21))
    for x, y in (task.make_batch(512, G().manual_seed(0), "cpu"), task.train_batch(512, G().manual_seed(0), "cpu")):
        bits = x.argmax(-1)
        assert x.shape == (512, 21, 2) and torch.equal(x.sum(-1), torch.ones(512, 21))
        assert [sum(row) % 2 for row in bits.tolist()] == y.tolist()
        assert 0.4 < y.float().mean() < 0.6 and math.isclose(task.chance_loss(), math.log(2))


def test_parity_trains_on_mixed_lengths_and_is_tested_on_uniform_bits():
    """Delétang et al.'s length mix: in training only the last k ~ U{1..T} bits are random; the test is T
    uniform bits (so a model that learned only short parities does not score on it)."""
    from tasks.parity import Parity, ParityConfig

    task = Parity(ParityConfig(seq_len=16))
    train = task.train_batch(4000, G().manual_seed(0), "cpu")[0].argmax(-1)
    test = task.splits(10, 4000, "cpu")["test"][0].argmax(-1)
    leading = (train.cumsum(1) == 0).sum(1)  # zeros before the first one
    assert 0.45 < (leading >= 8).float().mean() < 0.6  # P(k <= 8) = 1/2, plus random zeros
    assert (test.cumsum(1) == 0).sum(1).float().mean() < 1.1  # uniform bits: about one leading zero
    uniform = Parity(ParityConfig(seq_len=16, mixed_lengths=False)).train_batch(4000, G().manual_seed(0), "cpu")[0]
    assert (uniform.argmax(-1).cumsum(1) == 0).sum(1).float().mean() < 1.1


@pytest.mark.parametrize("degree", [3, 5])
def test_the_permutation_targets_are_the_running_products_applied_left_to_right(degree):
    from tasks.permutation import Permutation, PermutationConfig, group

    task = Permutation(PermutationConfig(seq_len=12, degree=degree))
    elements, _ = group(degree)
    assert len(elements) == math.factorial(degree) == task.input_size == task.n_outputs
    x, y = task.make_batch(200, G().manual_seed(0), "cpu")
    words = x.argmax(-1)
    for row in range(200):
        arrangement = list(range(degree))
        for t in range(12):
            g = elements[words[row, t]]
            arrangement = [g[a] for a in arrangement]  # apply g after everything before it
            assert elements[y[row, t]] == tuple(arrangement)
    counts = torch.bincount(y[:, -1], minlength=task.n_outputs)
    assert (counts > 0).sum() > 0.9 * task.n_outputs if degree == 3 else (counts > 0).sum() > 60  # near uniform
    assert math.isclose(task.chance_loss(), math.log(math.factorial(degree)))


def test_induction_asks_at_the_end_for_the_token_after_the_earlier_trigger():
    from tasks.induction import Induction, InductionConfig

    task = Induction(InductionConfig(seq_len=20, tokens=6))
    x, y = task.make_batch(512, G().manual_seed(0), "cpu")
    tokens = x.argmax(-1)
    assert x.shape == (512, 21, 7) and (tokens[:, -1] == 6).all()
    for row in range(512):
        (p,) = (tokens[row, :-1] == 6).nonzero().flatten().tolist()  # one trigger before the final one
        assert p <= 18 and tokens[row, p + 1] == y[row] and task.key_steps(x[row:row + 1]) == [[p, p + 1]]
    assert len(set(y.tolist())) == 6 and math.isclose(task.chance_loss(), math.log(6))
