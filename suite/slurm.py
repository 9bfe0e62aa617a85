"""`rnnbench slurm`: an sbatch array script for a benchmark (shards of the matrix) or tuning (workers on one study)."""
from __future__ import annotations

from pathlib import Path

from suite.errors import UserError


def add_parser(sub, parents):
    """The `slurm` subcommand's flags."""
    from suite.cliargs import count, index

    p = sub.add_parser("slurm", parents=parents, help="write (and --submit) an sbatch array for benchmark or tune")
    p.add_argument("what", choices=("benchmark", "tune"))
    p.add_argument("--profile", default="full", help="the profile the jobs run (default: full)")
    p.add_argument("--config", help="an experiment YAML instead of a profile")
    p.add_argument("--array", type=count, default=4, help="array tasks: shards of the matrix, or tuning workers")
    p.add_argument("--gpus-per-job", type=index, default=1, help="GPUs an array task (0: CPU jobs)")
    p.add_argument("--cpus-per-task", type=count, default=4)
    p.add_argument("--partition", help="SLURM partition")
    p.add_argument("--time", default="04:00:00", help="time limit of each task, [D-]HH:MM:SS")
    p.add_argument("--out", help="script path (default: slurm/<what>-<profile>.sbatch)")
    p.add_argument("--submit", action="store_true", help="also submit it with sbatch")
    p.add_argument("--extra", default="", help='more arguments for each task\'s command, e.g. --extra="--seeds 3"')


def command(a) -> int:
    """`rnnbench slurm`, from its parsed flags."""
    from suite.experiment import load_experiment
    from suite.stores import tracking_uri
    from suite.tuning.storage import storage_url

    exp = load_experiment(a.profile, a.config, announce=None)
    uri = tracking_uri(getattr(a, "tracking_uri", None), exp.stores.tracking_uri)
    return slurm(a.what, exp.origin, exp.name, uri, storage_url(None, uri, exp.stores.optuna_storage), a.array,
                 a.gpus_per_job, a.cpus_per_task, a.time, a.partition, a.out, a.submit, a.extra)


SBATCH = """#!/bin/bash
# Written by `rnnbench slurm {what} {source_flag}`: {array} array tasks, each {each}.
# Submit: sbatch {path}   (the environment at submission, stores included, goes with the jobs)
#SBATCH --job-name=rnnbench-{what}-{name}
#SBATCH --array=0-{last}
#SBATCH --cpus-per-task={cpus}
{gpus}#SBATCH --time={time}
{partition}#SBATCH --output={logs}/%x-%A_%a.out
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --signal=B:TERM@120
set -euo pipefail
cd {root}
: "${{MLFLOW_TRACKING_URI:?export the shared tracking server, e.g. http://HOST:5000 (README: Running on a cluster)}}"
{storage_check}# SIGTERM (preemption, the time limit) ends the current run as KILLED with its checkpoint; a requeued or
# resubmitted task resumes it and skips every finished cell. A requeued task keeps its job and task ids, so its log
# is the same file: appended to, not truncated, it keeps what each start did.
exec {root}/.venv/bin/rnnbench {what} {source_flag}{extra}
"""


def sbatch_script(what: str, source_flag: str, name: str, array: int, gpus: int, cpus: int, time_limit: str,
                  partition: str | None, root: Path, path: Path, extra: list[str]) -> str:
    """An sbatch array script: `benchmark` shards the matrix by SLURM_ARRAY_TASK_ID; `tune` runs a worker each."""
    import shlex

    each = ("one shard of the matrix (rnnbench reads SLURM_ARRAY_TASK_ID/COUNT)" if what == "benchmark"
            else "one Optuna worker on every study (PostgreSQL storage)")
    storage_check = ('' if what == "benchmark" else ': "${RNNBENCH_OPTUNA_STORAGE:?export the PostgreSQL URL '
                     'of the Optuna storage (README: Running on a cluster)}"\n')
    return SBATCH.format(what=what, source_flag=source_flag, array=array, each=each, path=path, name=name,
                         last=array - 1, cpus=cpus, gpus=f"#SBATCH --gres=gpu:{gpus}\n" if gpus else "",
                         time=time_limit, partition=f"#SBATCH --partition={partition}\n" if partition else "",
                         logs=path.parent / "logs", root=root, storage_check=storage_check,
                         extra="".join(" " + shlex.quote(a) for a in extra))


def slurm(what: str, origin: list[str], name: str, uri: str, storage: str, array: int, gpus: int, cpus: int,
          time_limit: str, partition: str | None, out: str | None, submit: bool, extra: str) -> int:
    """`rnnbench slurm`: check the stores are shared, write the sbatch array script, and submit it if asked."""
    import re
    import shlex
    import shutil
    import subprocess
    from urllib.parse import urlsplit

    if array < 1 or gpus < 0 or cpus < 1:
        raise UserError("--array and --cpus-per-task: need at least 1; --gpus-per-job: 0 or more")
    if not re.fullmatch(r"(\d+-)?\d{1,2}:\d{2}:\d{2}", time_limit):
        raise UserError(f"--time: expected [D-]HH:MM:SS, e.g. 04:00:00 (got {time_limit})")
    if urlsplit(uri).scheme not in ("http", "https", "postgresql", "mysql"):
        raise UserError(f"slurm: the jobs need a shared tracking store, not {uri}: export MLFLOW_TRACKING_URI="
                        "http://HOST:5000 of a server on PostgreSQL (`make server`, README: Running on a cluster)")
    if what == "tune" and not storage.startswith(("postgresql", "mysql")):
        raise UserError("slurm tune: workers on many nodes need an RDB study storage: export "
                        "RNNBENCH_OPTUNA_STORAGE=postgresql://USER:PASSWORD@HOST/optuna")
    root = Path(__file__).resolve().parent.parent
    path = Path(out or root / "slurm" / f"{what}-{name}.sbatch")
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.parent / "logs").mkdir(parents=True, exist_ok=True)
    path.write_text(sbatch_script(what, " ".join(origin[:2]), name, array, gpus, cpus, time_limit, partition, root,
                                  path, shlex.split(extra)))
    print(f"wrote {path}: {array} array tasks · {gpus} GPU(s) each · {time_limit}")
    if not submit:
        print(f"submit it: sbatch {path}")
        return 0
    if shutil.which("sbatch") is None:
        raise UserError("--submit: sbatch not found on this machine; submit the script from a SLURM login node")
    done = subprocess.run(["sbatch", "--parsable", str(path)], capture_output=True, text=True)
    if done.returncode:
        raise UserError(f"--submit: sbatch failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
    from suite.stores import redact

    print(f"submitted job {done.stdout.strip()}; watch it in the MLflow UI at {redact(uri)}")
    return 0
