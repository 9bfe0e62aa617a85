"""What each run rnnbench makes is: written on the run as the tag `rnnbench_role` by the command that made it, and
read back by the skip check, the claims, the report and `rnnbench register`. One vocabulary, in one place."""
from enum import StrEnum

TAG = "rnnbench_role"


class Role(StrEnum):
    CELL = "cell"  # a benchmark cell: one model on one task setting and seed (rnnbench run, benchmark)
    TRIAL = "trial"  # one Optuna trial, nested under its study (rnnbench tune)
    STUDY = "study"  # a tuning study: trial counts, the best value and parameters
    RECIPE = "recipe"  # one point of a model's recipe search on one setting, at one rung (suite/recipe.py)
    SWEEP = "sweep"  # a length sweep: each model's dependency horizon (rnnbench horizon)
    SWEEP_CELL = "sweep_cell"  # one model x length x seed of a sweep, nested under it
    GRADFLOW = "gradflow"  # gradient norms against steps, at initialisation and trained (rnnbench gradflow)
    SPEED = "speed"  # the suite against a hand-written loop, one model x task shape (rnnbench speed)
    SPEED_PROBE = "speed_probe"  # where MLflow's system-metrics sampler logs while `speed --system-metrics` times it
    SCALING = "scaling"  # one model's step time and memory at one length T (rnnbench speed --lengths)
    REPRODUCTION = "reproduction"  # a reference beside ours, with both means and the verdict (rnnbench reproduce)
    REPRO_CELL = "repro_cell"  # our side of a reproduction, one seed, nested under it
    REFERENCE_RUN = "reference_run"  # the reference's side, one seed, nested under it


# cells of a matrix: skipped once finished (trials are not: a trial's settings may equal a tuned cell's)
MATRIX = (Role.CELL, Role.RECIPE, Role.SWEEP_CELL, Role.REPRO_CELL)
