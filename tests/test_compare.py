"""The winner rule (suite/compare.py): a model wins a column only beyond chance and beyond seed noise."""
from suite.compare import decide, interval

CLEAR = {"a": [0.20, 0.22, 0.21], "b": [0.70, 0.72, 0.69]}  # test loss / chance over 3 seeds


def test_a_clear_gap_over_three_seeds_is_a_winner():
    v = decide({"a": [0.93, 0.94, 0.95], "b": [0.70, 0.72, 0.69]}, higher_is_better=True, vs_chance=CLEAR)
    assert v.winner == "a" and v.top == ["a"] and v.reason == ""
    low = decide({"a": [0.01, 0.012, 0.011], "b": [0.05, 0.06, 0.055]}, higher_is_better=False,
                 vs_chance={"a": [0.06, 0.07, 0.065], "b": [0.3, 0.35, 0.33]})
    assert low.winner == "a"  # lower is better for an MSE


def test_overlapping_seeds_are_a_tie():
    v = decide({"a": [0.91, 0.95, 0.90], "b": [0.93, 0.89, 0.92], "c": [0.5, 0.52, 0.51]}, True,
               {"a": [0.2, 0.2, 0.2], "b": [0.2, 0.2, 0.2], "c": [0.7, 0.7, 0.7]})
    assert v.winner is None and set(v.top) == {"a", "b"} and "seed noise" in v.reason


def test_chance_level_has_no_winner_however_the_means_fall():
    v = decide({"a": [0.100, 0.101, 0.100], "b": [0.098, 0.099, 0.098]}, True,
               {"a": [1.00, 0.99, 1.0], "b": [1.0, 1.0, 1.01]})
    assert v.winner is None and v.top == [] and "chance" in v.reason


def test_fewer_than_three_seeds_marks_nothing_and_says_why():
    v = decide({"a": [0.95, 0.96], "b": [0.5, 0.51]}, True, {"a": [0.1, 0.1], "b": [0.8, 0.8]})
    assert v.winner is None and "fewer than 3 seeds" in v.reason


def test_the_interval_is_students_t():
    low, high = interval([1.0, 2.0, 3.0])
    assert round(low, 3) == -0.484 and round(high, 3) == 4.484  # 2 ± t(0.975, 2) · 1/sqrt(3)
    assert interval([0.5]) is None and interval([0.5, 0.5]) == (0.5, 0.5)
