"""`rnnbench register`: the best run of each model on each task setting in the MLflow Model Registry, as
`rnnbench-<model>-<task>-T<len>` with the alias `champion`, which moves only to a result that beats the
current champion beyond seed noise (suite/compare.py's rule, on the two rows' seeds)."""
from __future__ import annotations

import json
import re
import statistics

from suite.errors import UserError
from suite.roles import Role

ALIAS = "champion"


def registry_name(model: str, setting) -> str:
    """rnnbench-<model>-<task>[-<variant>]-T<len>, the task and variant in lower case with dashes."""
    words = "-".join(re.sub(r"[^a-z0-9]+", "-", w.lower()).strip("-") for w in (setting.task, setting.variant) if w)
    return f"rnnbench-{model}-{words}-T{setting.seq_len}"


def register(profile: str, names: list[str] | None, tracking: str | None) -> int:
    from suite.experiment import resolve_profile
    from suite.runs import find_experiments, read_runs
    from suite.scoring import boards
    from suite.stores import check_store, open_client, tracking_uri

    uri = tracking_uri(tracking)
    check_store(uri, read_only=True)
    client = open_client(uri)
    experiments = find_experiments(client, uri, names, None if names else resolve_profile(profile), profile == "auto")
    cells = [r for e in experiments for r in read_runs(client, uri, e.experiment_id) if r.role == Role.CELL]
    if not cells:
        raise UserError(f"register: no benchmark runs in {', '.join(e.name for e in experiments)}")
    lines = [register_board(client, board) for board in boards(cells)]
    print("\n".join(line for group in lines for line in group))
    return 0


def register_board(client, board) -> list[str]:
    """For each model of the leaderboard: its best row's best seed as a new version; the alias if it beats the
    current champion's row."""
    from suite.compare import decide

    higher, out, key = board.metric == "acc", [], f"test_{board.metric}"
    for model in dict.fromkeys(r.model for r in board.rows if r.runs):
        rows = [r for r in board.rows if r.model == model and r.runs]
        row = (max if higher else min)(rows, key=lambda r: r.stats["test_metric"].mean)
        run, values = row.best_run(board.metric), row.stats["test_metric"].values
        name = registry_name(model, board.setting)
        version = _version(client, name, run, row, board, values)
        current = _champion(client, name)
        if current is None or current.version == version.version:
            moved = current is None
        else:
            old = json.loads(current.tags.get("seed_values", "[]"))
            moved = decide({"new": values, "old": old}, higher).winner == "new"
        if moved:
            client.set_registered_model_alias(name, ALIAS, version.version)
        state = "champion" if moved or (current and current.version == version.version) else \
            f"kept version {current.version} as champion (not better beyond seed noise)"
        out.append(f"{name} v{version.version}: {key} {statistics.mean(values):.4g} over {len(values)} seeds · {state}")
    return out


def _version(client, name, run, row, board, values):
    """The model version of `run` under `name`, created (with the registered model) if there is none yet."""
    from mlflow.exceptions import MlflowException

    from suite.logged_model import register_version

    try:
        client.create_registered_model(name, description=f"The best {row.model} on {board.setting.label} "
                                                          "(rnnbench register), by mean test metric over seeds.")
    except MlflowException:
        pass  # it exists
    for found in client.search_model_versions(f"name = '{name}' and run_id = '{run.id}'", max_results=1):
        return found
    tags = {"test_metric": f"{run.metrics.get(f'test_{board.metric}', float('nan')):.6g}",
            "row_mean": f"{statistics.mean(values):.6g}", "seeds": str(len(values)), "seed_values": json.dumps(values),
            "data_source": run.tags.get("data_source", ""), "profile": run.tags.get("profile", ""),
            "code_fingerprint": run.tags.get("code_fingerprint", ""), "config_hash": run.tags.get("config_hash", ""),
            "protocol": f"{board.setting.label}, init {row.init or 'default'}{', tuned' if row.tuned else ''}, "
                        f"lr {row.lr} ({row.recipe})"}
    return register_version(client, name, run.id, tags)


def _champion(client, name):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, ALIAS)
    except MlflowException:
        return None
