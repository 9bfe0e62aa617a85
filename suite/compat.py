"""Adapters to the private APIs of dependencies, one small piece each, so an upgrade breaks in one place.

Version bounds in pyproject.toml: lightning>=2.5,<3; optuna>=4.2,<6.
"""
from __future__ import annotations


class FastHookNames:
    """Lightning (private `_current_fx_name`) sets this string ~45 times a training_step call, and
    nn.Module.__setattr__ makes each a slow walk over its dicts: a plain attribute write instead."""

    def __setattr__(self, name, value):
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)


def trial_id(trial) -> int:
    """Optuna's storage-level id of a trial (private `_trial_id`); the public `number` is per study."""
    return trial._trial_id


def study_storage(study):
    """The storage object behind a study (private `_storage`)."""
    return study._storage


def trial_heartbeat(trial, study):
    """A context manager that beats for a trial while it runs, as study.optimize does (ask/tell has none);
    a no-op on storages without heartbeats (private `optuna.storages._heartbeat`)."""
    from optuna.storages._heartbeat import get_heartbeat_thread

    return get_heartbeat_thread(trial_id(trial), study_storage(study))
