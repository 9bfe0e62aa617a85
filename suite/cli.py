"""The `rnnbench` command: the parser, then one call a subcommand into the module that owns it.
Heavy imports (torch, Lightning, MLflow) happen inside the commands, so --help and `list` stay instant."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from suite.cliargs import count, host, index, jobs, lengths, names, port, positive
from suite.errors import Fault, UserError
from suite.server import add_parser as add_server_parser
from suite.signals import interrupt, on_sigterm
from suite.slurm import add_parser as add_slurm_parser

STORE_HELP = "MLflow store or server (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)"
EXPERIMENTS = Path(__file__).resolve().parent.parent / "configs" / "experiments"


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, no usage dump
        raise UserError(f"{message} (see `{self.prog} --help`)")


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--tracking-uri", default=argparse.SUPPRESS, help=STORE_HELP)
    common.add_argument("--experiment", default=argparse.SUPPRESS, help="MLflow experiment (default: rnnbench-<name>)")
    source = argparse.ArgumentParser(add_help=False)
    source.add_argument("--profile", default="auto", help="smoke, cpu, full or auto (full with CUDA, else cpu)")
    source.add_argument("--config", help="an experiment YAML instead of a profile")
    source.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting, e.g. train.lr=0.003, model.hidden_size=64, task.seq_len=200")
    source.add_argument("--force", action="store_true", help="rerun cells that already finished")
    source.add_argument("--reuse-stale", action="store_true", help="keep results whose code has changed since")
    models = argparse.ArgumentParser(add_help=False)
    models.add_argument("--models", type=names, help="comma-separated subset of models (default: the profile's)")
    both = argparse.ArgumentParser(add_help=False, parents=[models])
    both.add_argument("--tasks", type=names, help="comma-separated subset of tasks (default: the profile's)")
    packs = argparse.ArgumentParser(add_help=False)
    packs.add_argument("--jobs", type=jobs, help="cells trained at once, sharing the cores (auto: one a core)")
    packs.add_argument("--jobs-per-gpu", type=count, help="cells sharing each visible GPU (auto with CUDA: 4)")

    p = Parser(prog="rnnbench", parents=[common],
               description="Benchmark recurrent architectures on long-range dependency tasks.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    sub.add_parser("list", parents=[common], help="models, tasks and profiles")
    run = sub.add_parser("run", parents=[common, source], help="train one cell: a model on a task")
    run.add_argument("--model", help="a registered model (see `rnnbench list`)")
    run.add_argument("--task", help="a registered task")
    run.add_argument("--seed", type=index, help="seed (default: the config's first)")
    bench = sub.add_parser("benchmark", parents=[common, source, both, packs], help="every model on every task")
    bench.add_argument("--seeds", type=count, help="number of seeds (0..N-1), overriding the profile")
    bench.add_argument("--inits", type=names, help="run each cell once per init scheme (all, or e.g. torch,keras)")
    bench.add_argument("--tuned", action="store_true", help="use each model x task study's best parameters")
    bench.add_argument("--storage", help="Optuna storage for --tuned (default: see `rnnbench tune --help`)")
    bench.add_argument("--shard", help="run shard i/N of the cells (0 <= i < N); under a SLURM array, its task id")
    bench.add_argument("--dry-run", action="store_true", help="list the cells, what is finished and a timed estimate")
    tune = sub.add_parser("tune", parents=[common, source], help="Optuna-tune models on tasks, same budget each")
    tune.add_argument("--model", help="one model (default: every model of the profile)")
    tune.add_argument("--task", help="one task (default: every task of the profile)")
    tune.add_argument("--trials", type=count, help="top the study up to N trials (default: the profile's tune.trials)")
    tune.add_argument("--timeout", type=positive, help="stop starting trials after S seconds")
    tune.add_argument("--study", help="study name (default: <profile>-<model>-<task>-T<len>)")
    tune.add_argument("--storage", help="a SQLAlchemy URL or journal file (default: README › Tuning › Storage)")
    tune.add_argument("--workers", type=count, default=1, help="worker processes on the study (one GPU each)")
    tune.add_argument("--pruner", choices=("median", "hyperband", "none"), help="override the profile's tune.pruner")
    tune.add_argument("--space", help="a search-space YAML (default: the model's own search_space)")
    tune.add_argument("--parent-run", help=argparse.SUPPRESS)  # set for worker processes
    tune.add_argument("--worker-index", type=index, default=0, help=argparse.SUPPRESS)
    hz = sub.add_parser("horizon", parents=[common, source, models, packs], help="length sweep: each model's horizon")
    hz.add_argument("--task", help="a registered task with a length, e.g. copy (default: each task the profile "
                    "has a horizon ladder for, one sweep after another)")
    hz.add_argument("--lengths", type=lengths, help="the ladder, e.g. 50,100,200 (default: the profile's horizon:)")
    hz.add_argument("--seeds", type=count, help="seeds a length (default: the profile's)")
    budget = hz.add_mutually_exclusive_group()
    budget.add_argument("--budget-steps", type=count, help="optimizer steps a run, the same for every model")
    budget.add_argument("--budget-minutes", type=positive, help="wall-clock minutes a run")
    gf = sub.add_parser("gradflow", parents=[common, source, models], help="‖∂L/∂h_t‖ per step, at init and trained")
    gf.add_argument("--task", required=True, help="a registered task")
    gf.add_argument("--checkpoint", help="an MLflow run id whose model.pt to measure (one model)")
    speed = sub.add_parser("speed", parents=[common, source, both], help="suite vs hand-written PyTorch training speed")
    speed.set_defaults(config=None, profile="auto")
    speed.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available")
    speed.add_argument("--repeats", type=count, default=5, help="interleaved repeats; medians are reported (default 5)")
    speed.add_argument("--steps", type=count, help="timed steps a measurement (default: sized to ~1 s)")
    speed.add_argument("--compile", action="store_true", help="also time the raw loop under torch.compile")
    speed.add_argument("--system-metrics", action="store_true", help="also time the suite while MLflow samples them")
    speed.add_argument("--lengths", type=lengths, help="instead: step time and memory of every model at these T, "
                                                        "e.g. 64,256,1024, and each model's log-log slope")
    reading = argparse.ArgumentParser(add_help=False)
    reading.add_argument("--tracking-uri", default=argparse.SUPPRESS, help=STORE_HELP)
    reading.add_argument("--experiment", action="append", default=argparse.SUPPRESS,
                         help="an experiment to read, repeatable (default: rnnbench-<profile> and its companions)")
    reading.add_argument("--profile", default="auto", help="names the default experiment (auto: the newest results)")
    rep = sub.add_parser("report", parents=[reading], help="static HTML pages, summary.md and leaderboard.csv")
    rep.add_argument("--out", help="site folder (default: reports/<first experiment>/)")
    rep.add_argument("--mlflow-ui", metavar="URL", help="where run links point ('' for none; default: the UI)")
    rp = sub.add_parser("reproduce", parents=[common, packs], help="a reference result beside ours, same data, seeds")
    rp.add_argument("name", help="a reproduction, e.g. keras-seed (see README › Reproductions)")
    rp.add_argument("--seeds", type=count, default=3, help="seeds 0..N-1 on both sides (default 3)")
    rp.add_argument("--epochs", type=count, help="override the epochs of both sides (a quick check)")
    rp.add_argument("--force", action="store_true", help="rerun our cells that already finished")
    sub.add_parser("register", parents=[reading], help="each model x task's best run in the Model Registry")
    add_slurm_parser(sub, [common])
    listen = argparse.ArgumentParser(add_help=False)
    listen.add_argument("--host", type=host, default="127.0.0.1", help="address to bind (default: this machine only)")
    listen.add_argument("--port", type=port, default=5000)
    add_server_parser(sub, [common, listen])
    sub.add_parser("ui", parents=[common, listen], help="the MLflow UI on the store")
    return p


def main(argv: list[str] | None = None) -> int:
    import signal

    # SIGTERM (a scheduler's preemption, `kill`) and SIGINT, even where a background launch ignored it,
    # take the same path as Ctrl-C: the current run is marked KILLED, a tuning trial FAIL.
    if argv is None:
        on_sigterm()
        signal.signal(signal.SIGINT, interrupt)
    try:
        args = parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except UserError as e:
        print(f"rnnbench: error: {e}", file=sys.stderr)
        return 1 if isinstance(e, Fault) else 2
    except Exception as e:
        from suite.stores import known_failure

        if (said := known_failure(e)) is None:
            raise
        print(f"rnnbench: error: {said[1]}", file=sys.stderr)
        return said[0]
    except KeyboardInterrupt:
        print("rnnbench: interrupted; the current run is marked KILLED, finished runs are kept", file=sys.stderr)
        return 130


def _flag(a, name):
    """A global option (--tracking-uri, --experiment), which may come before or after the subcommand."""
    return getattr(a, name, None)


def _names(a):
    names = _flag(a, "experiment")
    return [names] if isinstance(names, str) else names  # `rnnbench --experiment E report` gives one string


def _experiment(a, **narrow):
    from suite.experiment import load_experiment

    return load_experiment(a.profile, a.config, a.set, **narrow)


def cmd_list(a) -> int:
    from suite.experiment import listing
    print(listing())
    return 0


def cmd_run(a) -> int:
    from suite.benchmark import run_one
    exp = _experiment(a, models=[a.model] if a.model else None, tasks=[a.task] if a.task else None,
                      seeds=[a.seed] if a.seed is not None else None)
    return run_one(exp, _flag(a, "tracking_uri"), _flag(a, "experiment"), force=a.force, reuse_stale=a.reuse_stale)


def cmd_benchmark(a) -> int:
    from suite.benchmark import benchmark
    exp = _experiment(a, models=a.models, tasks=a.tasks, seeds=range(a.seeds) if a.seeds is not None else None,
                      inits=a.inits)
    return benchmark(exp, _flag(a, "tracking_uri"), _flag(a, "experiment"), shard=a.shard, tuned=a.tuned,
                     storage=a.storage, force=a.force, reuse_stale=a.reuse_stale, jobs=(a.jobs, a.jobs_per_gpu),
                     dry_run=a.dry_run)


def cmd_tune(a) -> int:
    from suite.tuning.study import tune
    exp = _experiment(a, models=[a.model] if a.model else None, tasks=[a.task] if a.task else None)
    return tune(exp, _flag(a, "tracking_uri"), _flag(a, "experiment"), study=a.study, storage=a.storage,
                trials=a.trials, timeout=a.timeout, workers=a.workers, pruner=a.pruner, space=a.space,
                parent_run=a.parent_run, worker_index=a.worker_index)


def cmd_horizon(a) -> int:
    from suite.studies.horizon import sweep, swept_tasks
    exp = _experiment(a, models=a.models, tasks=[a.task] if a.task else None)
    return max(sweep(exp, t, a.lengths, a.seeds, a.budget_steps, a.budget_minutes, _flag(a, "tracking_uri"),
                     _flag(a, "experiment"), force=a.force, reuse_stale=a.reuse_stale, jobs=(a.jobs, a.jobs_per_gpu))
               for t in swept_tasks(exp, a.task, a.lengths))


def cmd_gradflow(a) -> int:
    from suite.studies.gradflow import gradflow
    exp = _experiment(a, models=a.models, tasks=[a.task])
    return gradflow(exp, a.task, a.checkpoint, _flag(a, "tracking_uri"), _flag(a, "experiment"), a.reuse_stale)


def cmd_speed(a) -> int:
    from suite.experiment import load_experiment
    from suite.studies import scaling, speed

    default = EXPERIMENTS / ("scaling.yaml" if a.lengths else "speed.yaml")
    config = a.config or (str(default) if a.profile == "auto" else None)
    sets = [*a.set, *([f"train.device={a.device}"] if a.device else [])]
    exp = load_experiment(a.profile, config, sets, models=a.models, tasks=a.tasks)
    if a.lengths:
        return scaling.scaling(exp, a.lengths, min(a.repeats, 3), _flag(a, "tracking_uri"), _flag(a, "experiment"))
    return speed.speed(exp, a.repeats, a.steps, a.compile, _flag(a, "tracking_uri"), _flag(a, "experiment"),
                       a.system_metrics)


def cmd_report(a) -> int:
    from suite.report import report
    return report(a.profile, _names(a), _flag(a, "tracking_uri"), a.out, a.mlflow_ui)


def cmd_reproduce(a) -> int:
    from suite.studies.reproduce import reproduce
    return reproduce(a.name, a.seeds, a.epochs, _flag(a, "tracking_uri"), _flag(a, "experiment"), force=a.force,
                     jobs=(a.jobs, a.jobs_per_gpu))


def cmd_register(a) -> int:
    from suite.register import register
    return register(a.profile, _names(a), _flag(a, "tracking_uri"))


def cmd_slurm(a) -> int:
    from suite.slurm import command
    return command(a)


def cmd_server(a) -> int:
    from suite.server import command
    return command(a)


def cmd_ui(a) -> int:
    from suite.server import ui
    from suite.stores import tracking_uri

    return ui(tracking_uri(_flag(a, "tracking_uri")), a.host, a.port)


COMMANDS = {"list": cmd_list, "run": cmd_run, "benchmark": cmd_benchmark, "tune": cmd_tune, "horizon": cmd_horizon,
            "gradflow": cmd_gradflow, "speed": cmd_speed, "report": cmd_report, "reproduce": cmd_reproduce,
            "register": cmd_register, "slurm": cmd_slurm, "server": cmd_server, "ui": cmd_ui}
