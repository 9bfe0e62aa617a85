"""The `rnnbench` command. Heavy imports (torch, Lightning, MLflow) happen inside the commands."""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
from pathlib import Path

from suite.errors import UserError


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, no usage dump
        raise UserError(f"{message} (see `{self.prog} --help`)")


def _csv(text: str) -> list[str]:
    return [t for t in text.replace(" ", ",").split(",") if t]


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--tracking-uri", default=argparse.SUPPRESS,
                        help="MLflow store or server (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)")
    common.add_argument("--experiment", default=argparse.SUPPRESS, help="MLflow experiment (default: rnnbench-<profile>)")
    source = argparse.ArgumentParser(add_help=False)
    source.add_argument("--profile", default="auto", help="smoke, cpu, full or auto (full with CUDA, else cpu)")
    source.add_argument("--config", help="an experiment YAML instead of a profile")
    source.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting, e.g. train.lr=0.003, model.hidden_size=64, task.seq_len=200")
    source.add_argument("--force", action="store_true", help="rerun cells that already finished")

    p = Parser(prog="rnnbench", parents=[common],
               description="Benchmark recurrent architectures on long-range dependency tasks.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    sub.add_parser("list", parents=[common], help="models, tasks and profiles")
    run = sub.add_parser("run", parents=[common, source], help="train one cell: a model on a task")
    run.add_argument("--model", help="a registered model (see `rnnbench list`)")
    run.add_argument("--task", help="a registered task")
    run.add_argument("--seed", type=int, help="seed (default: the config's first)")
    bench = sub.add_parser("benchmark", parents=[common, source], help="every model on every task of a profile")
    bench.add_argument("--models", type=_csv, help="comma-separated subset of models")
    bench.add_argument("--tasks", type=_csv, help="comma-separated subset of tasks")
    bench.add_argument("--seeds", type=int, help="number of seeds (0..N-1), overriding the profile")
    bench.add_argument("--tuned", action="store_true", help="use each model x task study's best parameters")
    bench.add_argument("--storage", help="Optuna storage for --tuned (default: see `rnnbench tune --help`)")
    bench.add_argument("--shard", help="run shard i/N of the cells (0 <= i < N); under a SLURM array, its task id")
    tune = sub.add_parser("tune", parents=[common, source], help="Optuna-tune models on tasks, same budget each")
    tune.add_argument("--model", help="one model (default: every model of the profile)")
    tune.add_argument("--task", help="one task (default: every task of the profile)")
    tune.add_argument("--trials", type=int, help="top the study up to N trials (default: the profile's tune.trials)")
    tune.add_argument("--timeout", type=float, help="stop starting trials after S seconds")
    tune.add_argument("--study", help="study name (default: <profile>-<model>-<task>-T<len>)")
    tune.add_argument("--storage", help="Optuna storage: a SQLAlchemy URL, or a journal file path "
                                        "(default: $RNNBENCH_OPTUNA_STORAGE, else optuna-journal.log beside mlflow.db)")
    tune.add_argument("--workers", type=int, default=1, help="worker processes on the study (one GPU each)")
    tune.add_argument("--pruner", choices=("median", "hyperband", "none"), help="override the profile's tune.pruner")
    tune.add_argument("--space", help="search-space YAML (default: configs/search/<model>.yaml)")
    tune.add_argument("--parent-run", help=argparse.SUPPRESS)  # set for worker processes
    tune.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
    hz = sub.add_parser("horizon", parents=[common, source], help="length sweep: each model's dependency horizon")
    hz.add_argument("--task", required=True, choices=("copy", "adding"))
    hz.add_argument("--models", type=_csv, help="comma-separated subset of models")
    hz.add_argument("--lengths", type=_csv, help="the ladder, e.g. 50,100,200 (default: the profile's horizon:)")
    hz.add_argument("--seeds", type=int, help="seeds a length (default: the profile's)")
    budget = hz.add_mutually_exclusive_group()
    budget.add_argument("--budget-steps", type=int, help="optimizer steps a run, the same for every model")
    budget.add_argument("--budget-minutes", type=float, help="wall-clock minutes a run")
    gf = sub.add_parser("gradflow", parents=[common, source], help="‖∂L/∂h_t‖ per step, at init and trained")
    gf.add_argument("--task", required=True, help="a registered task")
    gf.add_argument("--models", type=_csv, help="comma-separated subset of models (default: all of the profile)")
    gf.add_argument("--checkpoint", help="an MLflow run id whose model.pt to measure (one model)")
    speed = sub.add_parser("speed", parents=[common, source], help="suite vs hand-written PyTorch training speed")
    speed.set_defaults(config=None, profile="auto")
    speed.add_argument("--models", type=_csv, help="comma-separated subset of models")
    speed.add_argument("--tasks", type=_csv, help="comma-separated subset of tasks")
    speed.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available")
    speed.add_argument("--repeats", type=int, default=5, help="interleaved repeats; medians are reported (default 5)")
    speed.add_argument("--steps", type=int, help="timed steps a measurement (default: sized to ~1 s)")
    speed.add_argument("--compile", action="store_true", help="also time the raw loop under torch.compile")
    rep = sub.add_parser("report", help="static HTML pages, summary.md and leaderboard.csv from the MLflow store")
    rep.add_argument("--tracking-uri", default=argparse.SUPPRESS,
                     help="MLflow store or server (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)")
    rep.add_argument("--experiment", action="append", default=argparse.SUPPRESS,
                     help="an experiment to report, repeatable (default: rnnbench-<profile> and the rnnbench-horizon-, "
                          "-tune- and -gradflow-<profile> and rnnbench-speed experiments that exist)")
    rep.add_argument("--profile", default="auto", help="names the default experiment (auto: full with CUDA, else cpu)")
    rep.add_argument("--out", help="site folder (default: reports/<first experiment>/)")
    rep.add_argument("--mlflow-ui", metavar="URL", help="where run links point (default: the tracking server, else "
                                                        "http://127.0.0.1:5000, as `make ui` serves it; '' for no links)")
    slurm = sub.add_parser("slurm", parents=[common], help="write (and --submit) an sbatch array for benchmark or tune")
    slurm.add_argument("what", choices=("benchmark", "tune"))
    slurm.add_argument("--profile", default="full", help="the profile the jobs run (default: full)")
    slurm.add_argument("--config", help="an experiment YAML instead of a profile")
    slurm.add_argument("--array", type=int, default=4, help="array tasks: shards of the matrix, or tuning workers")
    slurm.add_argument("--gpus-per-job", type=int, default=1, help="GPUs an array task (0: CPU jobs)")
    slurm.add_argument("--cpus-per-task", type=int, default=4)
    slurm.add_argument("--partition", help="SLURM partition")
    slurm.add_argument("--time", default="04:00:00", help="time limit of each task, [D-]HH:MM:SS")
    slurm.add_argument("--out", help="script path (default: slurm/<what>-<profile>.sbatch)")
    slurm.add_argument("--submit", action="store_true", help="also submit it with sbatch")
    slurm.add_argument("--extra", default="", help='more arguments for each task\'s command, e.g. --extra="--seeds 3"')
    server = sub.add_parser("server", parents=[common], help="an MLflow tracking server (default: on the local store)")
    server.add_argument("--backend", help="backend store URI, e.g. postgresql://USER:PASSWORD@HOST/mlflow "
                                          "(default: the local store sqlite:///mlflow.db)")
    server.add_argument("--artifacts", default="mlartifacts", help="artifact folder the server keeps (default: ./mlartifacts)")
    server.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    server.add_argument("--port", type=int, default=5000)
    server.add_argument("--workers", type=int, default=4, help="server processes (default 4)")
    ui = sub.add_parser("ui", parents=[common], help="the MLflow UI on the store")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=5000)
    return p


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    import signal

    # SIGTERM (a scheduler's preemption, `kill`) and SIGINT, even where a background launch ignored it,
    # take the same path as Ctrl-C: the current run is marked KILLED, a tuning trial FAIL.
    if argv is None:
        signal.signal(signal.SIGTERM, _interrupt)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        args = parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except UserError as e:
        print(f"rnnbench: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rnnbench: interrupted; the current run is marked KILLED, finished runs are kept", file=sys.stderr)
        return 130


def cmd_list(args) -> int:
    from suite.config import PROFILES
    from suite.models import MODELS
    from tasks import TASKS

    print("models:  ", ", ".join(MODELS))
    print("tasks:   ", ", ".join(f"{n} ({t.output_kind})" for n, t in TASKS.items()))
    print("profiles:", ", ".join(("auto", *PROFILES)))
    return 0


def _plan(args, models=None, tasks=None, seeds=None):
    from suite.config import apply_sets, load_raw, plan, stores_config

    raw, name, source = load_raw(args.profile, args.config)
    if models:
        raw["models"] = models
    if tasks:
        known = raw.get("tasks") or {}
        raw["tasks"] = {t: known.get(t) or {} for t in tasks}
    if seeds is not None:
        raw["seeds"] = seeds
    raw = apply_sets(raw, args.set)
    args.stores = stores_config(raw, source)
    return plan(raw, source), name


def _uri(args) -> str:
    from suite.tracking import tracking_uri

    stores = getattr(args, "stores", None)
    return tracking_uri(getattr(args, "tracking_uri", None), stores.tracking_uri if stores else None)


def _storage(args) -> str:
    from suite.tuning import storage_url

    stores = getattr(args, "stores", None)
    return storage_url(args.storage, _uri(args), stores.optuna_storage if stores else None)


def _start(args, name):
    from suite.runner import init_torch
    from suite.tracking import connect, redact

    init_torch()
    uri = _uri(args)
    experiment = getattr(args, "experiment", None) or f"rnnbench-{name}"
    print(f"store {redact(uri)} · experiment {experiment}", flush=True)
    return connect(uri, experiment), experiment


def cmd_run(args) -> int:
    from suite.runner import run_matrix
    from suite.summary import table

    if args.profile == "auto" and not args.config:
        print(f"profile auto → {_auto_name()}", flush=True)
    cells, name = _plan(args, [args.model] if args.model else None, [args.task] if args.task else None,
                        [args.seed] if args.seed is not None else None)
    cells = [c for c in cells if c.seed == cells[0].seed]
    if len(cells) != 1:
        raise UserError(f"run trains one cell but this config has {len(cells)}; pick one with --model/--task "
                        "(or use `rnnbench benchmark`)")
    experiment_id, _ = _start(args, name)
    (outcome,) = run_matrix(cells, experiment_id, name, force=args.force)  # skipped if it already finished
    print(table([outcome]))
    if outcome.status == "FAILED":
        print(f"FAILED: {outcome.error}", file=sys.stderr)
        return 1
    return 0


def cmd_benchmark(args) -> int:
    from suite.cluster import parse_shard
    from suite.cluster import shard as cluster_shard
    from suite.runner import run_matrix
    from suite.summary import table

    if args.profile == "auto" and not args.config:
        print(f"profile auto → {_auto_name()}", flush=True)
    seeds = list(range(args.seeds)) if args.seeds is not None else None
    if seeds == []:
        raise UserError("--seeds: needs at least 1")
    cells, name = _plan(args, args.models, args.tasks, seeds)
    shard = parse_shard(args.shard)
    if shard:
        total, cells = len(cells), cluster_shard(cells, shard)
        print(f"shard {shard[0]}/{shard[1]}: {len(cells)} of {total} cells", flush=True)
        if not cells:
            return 0
    tags = {}
    if args.tuned:
        cells, tags = _tuned(cells, name, args)
    experiment_id, experiment = _start(args, name)
    print(f"{len(cells)} cells: {len({c.model for c in cells})} models × "
          f"{len({(c.task, c.seq_len) for c in cells})} task settings × {len({c.seed for c in cells})} seeds"
          + (" · tuned" if args.tuned else ""), flush=True)
    outcomes = run_matrix(cells, experiment_id, name, force=args.force, tags=tags)
    print(table(outcomes))
    failed = [o for o in outcomes if o.status == "FAILED"]
    skipped = sum(o.status == "SKIPPED" for o in outcomes)
    print(f"\n{len(outcomes) - len(failed) - skipped} trained, {skipped} skipped (already finished), {len(failed)} failed")
    for o in failed:
        print(f"  FAILED {o.cell.label}: {o.error} (run {o.run_id})")
    print(f"Browse the runs: `make ui` → http://127.0.0.1:5000 (experiment {experiment})")
    return 1 if failed else 0


def _tuned(cells, profile, args):
    """Each cell with its study's best parameters, and tags naming the study."""
    import optuna

    from suite.tuning import open_storage, study_name, with_params

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = _storage(args)
    storage, tuned, tags = open_storage(url), [], {}
    for cell in cells:
        name = study_name(profile, cell)
        try:
            study = optuna.load_study(study_name=name, storage=storage)
            params = study.best_params
        except (KeyError, ValueError):
            raise UserError(f"--tuned: no finished study '{name}' in {url}; run `rnnbench tune --profile {profile} "
                            f"--model {cell.model} --task {cell.task}` (or `make tune`) first") from None
        new = with_params(cell, params)
        tuned.append(new)
        tags[new.config_hash] = {"tuned": "true", "study": name, "study_best_trial": str(study.best_trial.number)}
    return tuned, tags


def cmd_tune(args) -> int:
    import subprocess

    from mlflow import MlflowClient

    from suite.cluster import Heartbeat, reap_stale_runs
    from suite.config import apply_sets, load_raw, plan, stores_config, tune_config
    from suite.tracking import redact
    from suite.tuning import claim_lock, load_space, make_study, open_storage, run_worker, study_name, summarise

    if args.workers < 1 or (args.trials is not None and args.trials < 1):
        raise UserError("--workers and --trials: need at least 1")
    if args.profile == "auto" and not args.config:
        print(f"profile auto → {_auto_name()}", flush=True)
    raw, name, source = load_raw(args.profile, args.config)
    if args.model:
        raw["models"] = [args.model]
    if args.task:
        raw["tasks"] = {args.task: (raw.get("tasks") or {}).get(args.task) or {}}
    raw = apply_sets(raw, args.set)
    args.stores = stores_config(raw, source)
    tune = tune_config(raw, source)
    if args.trials or args.pruner:
        tune = dataclasses.replace(tune, trials=args.trials or tune.trials, pruner=args.pruner or tune.pruner)
    cells = plan(raw, source)
    cells = list({(c.model, c.task, c.seq_len): c for c in cells if c.seed == cells[0].seed}.values())
    if args.study and len(cells) > 1:
        raise UserError(f"--study: names one study but this tunes {len(cells)}; add --model and --task")
    spaces = {c.model: load_space(c.model, {**raw, "models": [c.model]}, args.space) for c in cells}  # all checked first
    url = _storage(args)
    open_storage(url)  # a bad URL or an unreachable database stops here, before anything is recorded
    experiment_id, _ = _start(args, f"tune-{name}")
    if not args.parent_run:
        reap_stale_runs([experiment_id])
    for cell in cells:
        study = args.study or study_name(name, cell)
        if args.parent_run:  # a worker process started below
            run_worker(study, url, cell, spaces[cell.model], tune, tune.trials, experiment_id, name, args.parent_run,
                       worker=args.worker_index, timeout=args.timeout, say=lambda m: print(f"[worker {args.worker_index}] {m}", flush=True))
            continue
        budget = {"trials": tune.trials, "epochs": cell.train.epochs, "steps_per_epoch": cell.train.steps_per_epoch,
                  "pruner": tune.pruner, "sampler_seed": tune.sampler_seed}
        with claim_lock(url, study):  # workers on other nodes may be starting the same study
            created = make_study(study, url, tune, epochs=cell.train.epochs)
            for key, value in budget.items():
                created.set_user_attr(f"budget.{key}", value)
            parent = _study_run(experiment_id, study, cell, name, redact(url), budget)
        beat = Heartbeat(parent)
        print(f"study {study}: {tune.trials} trials, {cell.train.epochs} epochs each, pruner {tune.pruner} · "
              f"storage {redact(url)}", flush=True)
        try:
            if args.workers == 1:
                result = run_worker(study, url, cell, spaces[cell.model], tune, tune.trials, experiment_id, name,
                                    parent, timeout=args.timeout)
            else:
                argv = [sys.executable, "-m", "suite", "tune"]
                procs = [subprocess.Popen([*argv, *_worker_argv(args, cell, study, url, parent, i)],
                                          env=_worker_env(i, args.workers, url)) for i in range(args.workers)]
                codes = [p.wait() for p in procs]
                if any(codes):
                    raise UserError(f"{study}: worker exit codes {codes}; see their messages above")
                result = make_study(study, url, tune, epochs=cell.train.epochs)
        except BaseException as e:  # the parent run never stays RUNNING
            MlflowClient().set_terminated(parent, "KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED")
            raise
        finally:
            beat.close()
        summary = summarise(result, parent)
        MlflowClient().set_terminated(parent, "FINISHED")
        best = summary.get("best_val_loss")
        print(f"study {study}: {summary['n_complete']} complete, {summary['n_pruned']} pruned, {summary['n_failed']} failed, "
              f"{summary['epochs_trained']:.0f} epochs trained"
              + (f"; best val_loss {best:.4g} with {result.best_params}" if best is not None else ""), flush=True)
    return 0


def _study_run(experiment_id, study, cell, profile, storage, budget) -> str:
    """The study's one parent run: found again when the study is topped up, else created."""
    from mlflow import MlflowClient
    from mlflow.entities import Param

    client = MlflowClient()
    found = client.search_runs([experiment_id], f"tags.study = '{study}' and tags.rnnbench_role = 'study'", max_results=1)
    if found:
        client.update_run(found[0].info.run_id, status="RUNNING")
        return found[0].info.run_id
    run = client.create_run(experiment_id, run_name=f"study-{study}", tags={
        "rnnbench_role": "study", "study": study, "model": cell.model, "task": cell.task, "seq_len": str(cell.seq_len),
        "profile": profile, "storage": storage})
    client.log_batch(run.info.run_id, params=[Param(f"budget.{k}", str(v)) for k, v in budget.items()])
    return run.info.run_id


def _worker_argv(args, cell, study, url, parent, index) -> list[str]:
    """The same tune command, narrowed to one study, for worker process `index`."""
    argv = ["--model", cell.model, "--task", cell.task, "--study", study,
            "--parent-run", parent, "--worker-index", str(index)]
    argv += ["--config", args.config] if args.config else ["--profile", args.profile]
    for item in args.set:
        argv += ["--set", item]
    for flag in ("trials", "pruner", "timeout", "space", "experiment"):  # the stores go in the environment
        value = getattr(args, flag, None)
        if value is not None:
            argv += [f"--{flag.replace('_', '-')}", str(value)]
    return argv


def _worker_env(index: int, workers: int, storage: str) -> dict:
    """The worker's environment: its stores (not on its command line, where `ps` shows passwords), GPU, threads."""
    import mlflow
    import torch

    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow.get_tracking_uri(), "RNNBENCH_OPTUNA_STORAGE": storage}
    gpus = torch.cuda.device_count()
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = str(index % gpus)
    env["RNNBENCH_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))
    return env


def cmd_horizon(args) -> int:
    import tempfile
    import time

    from mlflow import MlflowClient
    from mlflow.entities import Metric

    from suite import horizon
    from suite.config import apply_sets, horizon_config, load_raw
    from suite.runner import run_matrix

    if args.profile == "auto" and not args.config:
        print(f"profile auto → {_auto_name()}", flush=True)
    raw, name, source = load_raw(args.profile, args.config)
    if args.models:
        raw["models"] = args.models
    raw["tasks"] = {args.task: (raw.get("tasks") or {}).get(args.task) or {}}
    raw = apply_sets(raw, args.set)
    cfg = horizon_config(raw, source)
    try:
        lengths = [int(t) for t in args.lengths] if args.lengths else getattr(cfg, args.task)
    except ValueError:
        raise UserError(f"--lengths: expected comma-separated integers (got {','.join(args.lengths)})") from None
    cfg = dataclasses.replace(cfg, **{args.task: lengths}, seeds=args.seeds or cfg.seeds,
                              budget_steps=args.budget_steps or cfg.budget_steps,
                              budget_minutes=args.budget_minutes or cfg.budget_minutes)
    cfg = horizon_config({"horizon": dataclasses.asdict(cfg)}, "the command line")  # validates the overrides
    cells = horizon.sweep_cells(raw, args.task, cfg, source)
    experiment_id, experiment = _start(args, f"horizon-{name}")
    client = MlflowClient()
    parent = client.create_run(experiment_id, run_name=f"horizon-{args.task}", tags={
        "rnnbench_role": "sweep", "task": args.task, "profile": name, "lengths": ",".join(map(str, lengths)),
        "seeds": str(cfg.seeds), "budget": f"{cfg.budget_steps} steps" if cfg.budget_steps else
        f"{cfg.budget_minutes} min" if cfg.budget_minutes else f"{cells[0].train.epochs} epochs"}).info.run_id
    print(f"horizon sweep on {args.task}: {len(cells)} runs (models × T={lengths} × {cfg.seeds} seeds)", flush=True)
    try:
        outcomes = run_matrix(cells, experiment_id, name, force=args.force,
                              tags={c.config_hash: {"mlflow.parentRunId": parent} for c in cells})
    except BaseException as e:
        client.set_terminated(parent, "KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED")
        raise
    horizons, shares, ratio, at_2t = horizon.summarise(outcomes, cfg.min_share)
    now = int(time.time() * 1000)
    client.log_batch(parent, metrics=[Metric(f"horizon_{m}", float(h or 0), now, 0) for m, h in horizons.items()])
    rows = [{"model": m, "seq_len": T, "solved_share": s, "test_vs_chance": ratio.get((m, T)),
             "test_vs_chance_at_2T": at_2t.get((m, T))} for (m, T), s in sorted(shares.items())]
    client.log_dict(parent, {"horizon": horizons, "solved_share": rows, "min_share": cfg.min_share}, "horizon.json")
    with tempfile.TemporaryDirectory() as tmp:
        horizon.plot(ratio, args.task, f"{tmp}/test_vs_chance.png")
        client.log_artifact(parent, f"{tmp}/test_vs_chance.png")
    client.set_terminated(parent, "FINISHED")
    print(f"\nsolved share by length (horizon: longest T solved by >= {cfg.min_share:.0%} of seeds, all shorter too)")
    print(horizon.table(horizons, shares, ratio, at_2t))
    print(f"Sweep run {parent} in experiment {experiment}: horizon_<model> metrics, horizon.json, test_vs_chance.png")
    return 0


def cmd_gradflow(args) -> int:
    import tempfile
    import time

    import torch
    import yaml
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    from suite import gradflow
    from suite.config import cell_from_resolved
    from suite.runner import build, device_for, run_matrix
    from suite.tracking import finished_runs

    cells, name = _plan(args, args.models, [args.task])
    cells = [c for c in cells if c.seed == cells[0].seed and c.seq_len == cells[0].seq_len]
    experiment_id, experiment = _start(args, f"gradflow-{name}")
    client = MlflowClient()
    trained_runs = {}
    if args.checkpoint:
        if len(cells) != 1 and not args.models:
            raise UserError("--checkpoint: measures one model's run; name it with --models")
        try:
            resolved = client.download_artifacts(args.checkpoint, "config.yaml")
        except Exception:
            raise UserError(f"--checkpoint: run {args.checkpoint} not found, or it has no config.yaml") from None
        cells = [cell_from_resolved(yaml.safe_load(open(resolved)))]
        trained_runs[cells[0].model] = args.checkpoint
    else:  # train (or find already trained) each model's cell in the profile's experiment
        bench_id, _ = _start(args, name)
        run_matrix(cells, bench_id, name)
        found = finished_runs(bench_id, [c.config_hash for c in cells])
        trained_runs = {c.model: found[c.config_hash].info.run_id for c in cells if c.config_hash in found}
    curves = {}
    for cell in cells:
        if cell.model not in trained_runs:
            raise UserError(f"gradflow: {cell.label} has no finished run to measure")
        device = device_for(cell)
        task, _, _, test, fresh = build(cell, device)
        x, y = next(iter(test))
        x, y = x[:256], y[:256]
        curves[f"{cell.model} init"] = gradflow.hidden_grad_norms(fresh.net.to(device), task, x, y)
        weights = client.download_artifacts(trained_runs[cell.model], "model.pt")
        fresh.net.load_state_dict(torch.load(weights, map_location=device, weights_only=True))
        curves[f"{cell.model} trained"] = gradflow.hidden_grad_norms(fresh.net, task, x, y)
    run = client.create_run(experiment_id, run_name=f"gradflow-{args.task}", tags={
        "task": args.task, "profile": name, "models": ",".join(c.model for c in cells), "seq_len": str(cells[0].seq_len),
        "trained_runs": ",".join(trained_runs[c.model] for c in cells)}).info.run_id
    slopes = {k: gradflow.decay_per_step(v) for k, v in curves.items()}
    now = int(time.time() * 1000)
    client.log_batch(run, metrics=[Metric(("grad_decay_per_step_init_" if k.endswith(" init") else "grad_decay_per_step_")
                                          + k.split()[0], v, now, 0) for k, v in slopes.items() if math.isfinite(v)])
    client.log_text(run, gradflow.to_csv(curves), "gradflow.csv")
    with tempfile.TemporaryDirectory() as tmp:
        gradflow.plot(curves, f"gradient flow on {args.task} T={cells[0].seq_len}", f"{tmp}/gradflow.png")
        client.log_artifact(run, f"{tmp}/gradflow.png")
    client.set_terminated(run, "FINISHED")
    print("grad_decay_per_step (slope of log‖∂L/∂h_t‖ per step from the loss; < 0 vanishes, > 0 explodes)")
    for cell in cells:
        print(f"  {cell.model:9s} init {slopes[cell.model + ' init']:+.4f}   trained {slopes[cell.model + ' trained']:+.4f}")
    print(f"Run {run} in experiment {experiment}: gradflow.csv, gradflow.png")
    return 0


def cmd_speed(args) -> int:
    import mlflow

    from suite.speed import attach_attn_ratios, measure, speed_table
    from suite.tracking import environment

    if args.repeats < 1 or (args.steps is not None and args.steps < 1):
        raise UserError("--repeats and --steps: need at least 1")
    if not args.config and args.profile == "auto":
        args.config = str(Path(__file__).resolve().parent.parent / "configs" / "experiments" / "speed.yaml")
    if args.device:
        args.set = [*args.set, f"train.device={args.device}"]
    cells, _ = _plan(args, args.models, args.tasks)
    cells = [c for c in cells if c.seed == cells[0].seed]
    experiment_id, experiment = _start(args, "speed")
    print(f"{len(cells)} cells, {args.repeats} interleaved repeats each (medians)", flush=True)
    rows = []
    for i, cell in enumerate(cells, 1):
        rows.append(measure(cell, args.repeats, args.steps, compile=args.compile))
        r = rows[-1]
        print(f"[{i}/{len(cells)}] {cell.model} · {cell.task} T={cell.seq_len}: suite {r.suite:.0f}/s, "
              f"raw {r.raw:.0f}/s, suite/raw {r.ratio:.3f}", flush=True)
        if not r.same_loss:
            raise UserError(f"speed: {cell.label}: the suite and the raw loop disagree on the first loss")
    attach_attn_ratios(rows)
    env = environment()
    for r in rows:
        with mlflow.start_run(experiment_id=experiment_id, run_name=f"speed-{r.cell.model}-{r.cell.task}-T{r.cell.seq_len}",
                              tags={"model": r.cell.model, "task": r.cell.task, "seq_len": str(r.cell.seq_len),
                                    "device": r.cell.train.device, "batch_size": str(r.cell.train.batch_size),
                                    "config_hash": r.cell.config_hash, **env}):
            mlflow.log_metrics(r.metrics())
    print(speed_table(rows))
    print(f"Recorded in MLflow experiment {experiment} ({len(rows)} runs)")
    return 0


def cmd_report(args) -> int:
    from suite import report
    from suite.config import load_raw, resolve_profile, stores_config

    names = getattr(args, "experiment", None)
    names = [names] if isinstance(names, str) else names  # `rnnbench --experiment E report` gives one string
    raw, _, source = load_raw(args.profile)
    args.stores = stores_config(raw, source)  # the profile's store, when no flag or variable names one
    index = report.build(_uri(args), names, None if names else resolve_profile(args.profile), out=args.out,
                         ui=args.mlflow_ui)
    print(f"Report: {index} (open {index.resolve().as_uri()})")
    return 0


def cmd_ui(args) -> int:
    from suite.tracking import tracking_uri

    uri = tracking_uri(getattr(args, "tracking_uri", None))
    if uri.startswith(("http://", "https://")):
        raise UserError(f"--tracking-uri: {uri} is a server already; open it in a browser")
    print(f"MLflow UI on http://{args.host}:{args.port} (store {uri}); Ctrl-C stops it", flush=True)
    os.execvp(sys.executable, [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
                               "--host", args.host, "--port", str(args.port)])


def cmd_slurm(args) -> int:
    import re
    import shlex
    import shutil
    import subprocess
    from urllib.parse import urlsplit

    from suite.cluster import sbatch_script
    from suite.config import load_raw, stores_config
    from suite.tuning import storage_url

    if args.array < 1 or args.gpus_per_job < 0 or args.cpus_per_task < 1:
        raise UserError("--array and --cpus-per-task: need at least 1; --gpus-per-job: 0 or more")
    if not re.fullmatch(r"(\d+-)?\d{1,2}:\d{2}:\d{2}", args.time):
        raise UserError(f"--time: expected [D-]HH:MM:SS, e.g. 04:00:00 (got {args.time})")
    raw, name, source = load_raw(args.profile, args.config)
    args.stores = stores_config(raw, source)
    uri = _uri(args)
    if urlsplit(uri).scheme not in ("http", "https", "postgresql", "mysql"):
        raise UserError(f"slurm: the jobs need a shared tracking store, not {uri}: export MLFLOW_TRACKING_URI="
                        "http://HOST:5000 of a server on PostgreSQL (`make server`, README: Running on a cluster)")
    if args.what == "tune" and not storage_url(None, uri, args.stores.optuna_storage).startswith(("postgresql", "mysql")):
        raise UserError("slurm tune: workers on many nodes need an RDB study storage: export "
                        "RNNBENCH_OPTUNA_STORAGE=postgresql://USER:PASSWORD@HOST/optuna")
    root = Path(__file__).resolve().parent.parent
    path = Path(args.out or root / "slurm" / f"{args.what}-{name}.sbatch")
    source = f"--config {args.config}" if args.config else f"--profile {args.profile}"
    extra = shlex.split(args.extra)
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.parent / "logs").mkdir(parents=True, exist_ok=True)
    path.write_text(sbatch_script(args.what, source, name, args.array, args.gpus_per_job, args.cpus_per_task, args.time,
                                  args.partition, root, path, extra))
    print(f"wrote {path}: {args.array} array tasks · {args.gpus_per_job} GPU(s) each · {args.time}")
    if not args.submit:
        print(f"submit it: sbatch {path}")
        return 0
    if shutil.which("sbatch") is None:
        raise UserError("--submit: sbatch not found on this machine; submit the script from a SLURM login node")
    done = subprocess.run(["sbatch", "--parsable", str(path)], capture_output=True, text=True)
    if done.returncode:
        raise UserError(f"--submit: sbatch failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
    print(f"submitted job {done.stdout.strip()}; watch it in the MLflow UI at {uri.split('@')[-1]}")
    return 0


def cmd_server(args) -> int:
    from suite.tracking import DEFAULT_URI, redact

    backend = args.backend or DEFAULT_URI
    if "://" not in backend:
        raise UserError(f"--backend: expected a database URI such as postgresql://USER:PASSWORD@HOST/mlflow (got {backend})")
    Path(args.artifacts).mkdir(parents=True, exist_ok=True)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"note: binding {args.host} exposes the server (no authentication) beyond this machine", file=sys.stderr)
    print(f"MLflow tracking server on http://{args.host}:{args.port} · backend {redact(backend)} · artifacts "
          f"{Path(args.artifacts).resolve()}\nPoint jobs at it: export MLFLOW_TRACKING_URI=http://{args.host}:{args.port}",
          flush=True)
    if args.workers < 1:
        raise UserError("--workers: needs at least 1")
    os.environ["MLFLOW_BACKEND_STORE_URI"] = backend  # not on the command line, where `ps` would show a password
    os.execvp(sys.executable, [sys.executable, "-m", "mlflow", "server", "--workers", str(args.workers),
                               "--artifacts-destination", str(Path(args.artifacts).resolve()),
                               "--host", args.host, "--port", str(args.port)])


def _auto_name() -> str:
    from suite.config import resolve_profile

    name = resolve_profile("auto")
    return f"{name} ({'CUDA found' if name == 'full' else 'no CUDA device'})"


COMMANDS = {"list": cmd_list, "run": cmd_run, "benchmark": cmd_benchmark, "tune": cmd_tune, "horizon": cmd_horizon,
            "gradflow": cmd_gradflow, "speed": cmd_speed, "report": cmd_report, "slurm": cmd_slurm, "server": cmd_server,
            "ui": cmd_ui}
