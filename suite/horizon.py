"""The dependency horizon: the longest length a model solves, with every shorter one solved too."""
from __future__ import annotations

MAJORITY = 0.51


def horizon(solved: dict[int, list[bool]], min_share: float = MAJORITY) -> int | None:
    """Longest T of the ladder solved in at least `min_share` of its seeds, every shorter T too.

    `solved` maps each length to one flag a seed. None when even the shortest length is not solved.
    A length solved after an unsolved shorter one does not count: the horizon is where solving stops.
    """
    best = None
    for length in sorted(solved):
        runs = solved[length]
        if not runs or sum(runs) / len(runs) < min_share:
            break
        best = length
    return best
