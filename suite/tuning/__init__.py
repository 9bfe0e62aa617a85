"""Optuna tunes one model on one task: a plain objective(trial), pruned, resumable, parallel, in MLflow.

space.py (what is searched), storage.py (where studies live, and the locks), worker.py (a worker's trial
loop), objective.py (one trial = one nested run), study.py (the `tune` command and `benchmark --tuned`).
"""
