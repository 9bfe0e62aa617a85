"""ListOps' sampler against LRA's own generator (lengths, depths and values drawn alike), at LRA's settings, and
the cache of drawn sets (read back equal, redrawn when corrupt, skipped when it cannot be written)."""
import logging
import random

import numpy as np
import pytest
from scipy import stats

import tasks.listops as listops
from tasks.listops import VOCAB, ListOps, ListOpsConfig, dataset, draw, value

VALUE_P = 0.25


def lra_tree(rng, depth, max_depth, max_args):
    """LRA's `generate_tree` (lra_benchmarks/data/listops.py) as written there, on a seeded random.Random: the
    tree as nested (operator, [arguments]) and its length."""
    if depth < max_depth:
        r = rng.random()
    else:
        r = 1
    if r > VALUE_P:
        return rng.choice(range(10)), 1
    length, values = 2, []
    for _ in range(rng.randint(2, max_args)):
        t, n = lra_tree(rng, depth + 1, max_depth, max_args)
        values.append(t)
        length += n
    return (rng.choice(listops.OPERATORS), values), length


def lra_tokens(t):
    """A tree's tokens, parentheses left out (ours)."""
    if isinstance(t, int):
        return [str(t)]
    return [t[0], *(tok for arg in t[1] for tok in lra_tokens(arg)), "]"]


def lra_draw(n, min_len, max_len, max_depth, max_args, seed):
    """LRA's main loop: trees drawn until n have a length in range (inclusive here, like ours)."""
    rng, kept = random.Random(seed), []
    while len(kept) < n:
        t, length = lra_tree(rng, 1, max_depth, max_args)
        if min_len <= length <= max_len:
            kept.append(lra_tokens(t))
    return kept


def facts(rows):
    """Each expression's length, depth (its deepest digit's level) and value."""
    lengths, depths, values = [], [], []
    for tokens in rows:
        open_ops, deepest = 0, 0
        for t in tokens:
            open_ops += (t in listops.OPERATORS) - (t == "]")
            deepest = max(deepest, open_ops + 1) if t.isdigit() else deepest
        lengths.append(len(tokens))
        depths.append(deepest)
        values.append(value(tokens))
    return np.array(lengths), np.array(depths), np.array(values)


def decode(x):
    """Token ids (left-padded rows) back to token lists."""
    return [[VOCAB[i] for i in row if i] for row in x]


def same_counts(a, b):
    """The p-value of a chi-square test that two samples of small integers share one distribution."""
    table = np.stack([np.bincount(a, minlength=11), np.bincount(b, minlength=11)])
    return stats.chi2_contingency(table[:, table.sum(0) > 0]).pvalue


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path, monkeypatch):
    """Each test its own cache folder, and nothing held over in memory."""
    monkeypatch.setenv("RNNBENCH_CACHE", str(tmp_path / "cache"))
    dataset.cache_clear()
    listops._warn_once.cache_clear()
    yield
    dataset.cache_clear()


def test_the_sampler_draws_lra_generators_lengths_depths_and_values():
    setting = dict(min_len=50, max_len=200, max_depth=6, max_args=5)
    ref = facts(lra_draw(3000, **setting, seed=1))
    ours = facts(decode(draw((200, 50, 6, 5), 3000, seed=2)[0]))
    assert ours[0].min() >= 50 and ours[0].max() <= 200 and ours[1].max() <= 6
    assert stats.ks_2samp(ref[0], ours[0]).pvalue > 0.001
    assert same_counts(ref[1], ours[1]) > 0.001 and same_counts(ref[2], ours[2]) > 0.001


def test_the_comparison_tells_another_grammar_apart(monkeypatch):
    monkeypatch.setattr(listops, "VALUE_P", 0.35)  # operators a little more often: deeper, longer trees
    ref = facts(lra_draw(3000, 50, 200, 6, 5, seed=1))
    ours = facts(decode(draw((200, 50, 6, 5), 3000, seed=2)[0]))
    assert stats.ks_2samp(ref[0], ours[0]).pvalue < 0.001 or same_counts(ref[1], ours[1]) < 0.001


def test_lra_settings_draw_expressions_of_lra_lengths_and_their_values():
    seq_len = 1999
    x, y = draw((seq_len, 501, 10, 10), 200, seed=0)
    assert x.shape == (200, seq_len) and x.dtype == np.uint8 and (x[:, -1] != 0).all()
    for row, label in zip(x, y, strict=True):
        tokens = [VOCAB[i] for i in row if i]
        assert 501 <= len(tokens) <= seq_len and (row[:seq_len - len(tokens)] == 0).all()
        assert value(tokens) == label


def test_a_cached_set_is_read_back_without_drawing(monkeypatch, tmp_path):
    first = dataset((40, 8, 4, 5), 300, 7)
    assert len(list((tmp_path / "cache" / "listops").glob("*.npz"))) == 1
    dataset.cache_clear()
    monkeypatch.setattr(listops, "draw", lambda *a: pytest.fail("drawn again"))
    second = dataset((40, 8, 4, 5), 300, 7)
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_corrupt_cached_set_is_drawn_again_with_one_warning(damage, tmp_path, caplog):
    first = dataset((40, 8, 4, 5), 300, 7)
    (path,) = (tmp_path / "cache" / "listops").glob("*.npz")
    raw = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(raw[: len(raw) // 2])
    else:  # one token changed inside the stored array: only the checksum can tell
        i = raw.index(first[0].tobytes()[:64]) + 63
        path.write_bytes(raw[:i] + bytes([raw[i] ^ 1]) + raw[i + 1:])
    dataset.cache_clear()
    with caplog.at_level(logging.WARNING, "tasks.listops"):
        second = dataset((40, 8, 4, 5), 300, 7)
    assert len(caplog.records) == 1 and "drawing it again" in caplog.text
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    dataset.cache_clear()
    third = dataset((40, 8, 4, 5), 300, 7)  # written anew: read without a warning
    assert len(caplog.records) == 1 and all(np.array_equal(a, b) for a, b in zip(first, third, strict=True))


def test_a_cache_folder_that_cannot_be_written_only_warns(tmp_path, monkeypatch, caplog):
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    monkeypatch.setenv("RNNBENCH_CACHE", str(blocked / "cache"))  # under a file: no folder can be made there
    with caplog.at_level(logging.WARNING, "tasks.listops"):
        splits = ListOps(ListOpsConfig(seq_len=40, min_len=8, n_train=200, n_eval=50)).splits(0, 0, "cpu")
    assert [len(splits[s][1]) for s in ("train", "val", "test")] == [200, 50, 50]
    assert len(caplog.records) == 1 and "without caching" in caplog.text
    assert list(tmp_path.iterdir()) == [blocked]


def test_a_length_the_grammar_cannot_reach_is_refused():
    with pytest.raises(ValueError, match="longest expression"):
        ListOps(ListOpsConfig(seq_len=100, min_len=30, max_depth=2, max_args=5)).check()
