"""The store at the size a cluster makes it: a real store multiplied to N runs, and the commands that read it timed
side by side against another commit's code (`make scale`).

    python -m suite.studies.scale --runs 50,5000,50000 --postgres 5000 --against HEAD~1

The seed is a real benchmark (the smoke profile, 16 runs; kept in --work and reused). Each size copies every run
of it, in the store's own schema (runs, tags, params, metrics, latest metrics, dataset inputs), with new ids and
earlier start times, until the store holds N runs: the cells are the same, so every copy is a superseded run of a
planned cell, the case a skip check or a report cannot filter out by hash. The copies share the originals'
artifacts. For each size and each code (the commit --against names, checked out into --work, and this tree) it
times, in turn:
  report      `rnnbench report` (the two codes' pages are compared: they must be the same bytes)
  dry run     `rnnbench benchmark --dry-run --reuse-stale` (every cell already finished: the skip check alone)
  benchmark   `rnnbench benchmark --reuse-stale` (every cell finished: skip check, table, plan)
  start       `rnnbench benchmark` of a plan no run has finished yet (`--set train.lr=...`, a value per code:
              the first's cell is not the second's): seconds from the command to its first cell's first
              `Trainer.fit` (the skip check, the claim against the store and MLflow's run done); the benchmark
              is then stopped with Ctrl-C
  imports     `python -c "import torch, lightning.pytorch, mlflow.store.tracking.sqlalchemy_store"`: the
              floor under any start, paid by every code at any store size (timed once per size)
--reuse-stale: where the two codes' fingerprints differ (a change to the training core), neither retrains the seed's
cells; their reports then differ where they say whose code a result ran (the byte check is for codes that agree).
PostgreSQL (--postgres N) runs on a throw-away server (suite/pgtemp.py), the store copied into it.
"""
from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TABLES = ("runs", "tags", "params", "metrics", "latest_metrics", "inputs", "input_tags")  # what a run is made of
OWNER = {"tags": "run_uuid", "params": "run_uuid", "metrics": "run_uuid", "latest_metrics": "run_uuid",
         "inputs": "destination_id", "input_tags": "input_uuid"}  # the column naming the row's run (or input)
COPIED = ("experiments", "experiment_tags", "datasets", *TABLES)  # a seed store into PostgreSQL, in key order
STEPS = ("report", "dry run", "benchmark", "start")
FLOOR = "import torch, lightning.pytorch, mlflow.store.tracking.sqlalchemy_store"
FIRST_FIT = """import runpy, sys, time
import lightning.pytorch as pl
fit = pl.Trainer.fit
def first(*a, **k):
    print(f"FIRST_FIT {time.time():.3f}", file=sys.stderr, flush=True)
    return fit(*a, **k)
pl.Trainer.fit = first
sys.argv = ["suite", *sys.argv[1:]]
runpy.run_module("suite", run_name="__main__", alter_sys=True)
"""  # `python -m suite ARGV` saying when its first cell starts training


def seed(work: Path, profile: str) -> Path:
    """A real benchmark's store (made once)."""
    db = work / "seed" / "mlflow.db"
    if not db.is_file():
        db.parent.mkdir(parents=True, exist_ok=True)
        print(f"seed: rnnbench benchmark --profile {profile} into {db} (once) ...", flush=True)
        subprocess.run([sys.executable, "-m", "suite", "benchmark", "--profile", profile, "--tracking-uri",
                        f"sqlite:///{db}"], cwd=db.parent, check=True, stdout=subprocess.DEVNULL)
    return db


def multiply(url: str, n: int) -> int:
    """Copy every run of the store until it holds `n` (new ids, each copy started a second earlier than the
    last); returns the runs it holds."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    meta = sa.MetaData()
    tables = {name: sa.Table(name, meta, autoload_with=engine) for name in TABLES}
    with engine.begin() as conn:
        rows = {name: [dict(r._mapping) for r in conn.execute(sa.select(t))] for name, t in tables.items()}
        originals = rows["runs"]
        of = {name: {} for name in OWNER}  # table -> the id it hangs from -> its rows
        for name, column in OWNER.items():
            for r in rows[name]:
                of[name].setdefault(r[column], []).append(r)
        copies, batch = max(n - len(originals), 0), {name: [] for name in TABLES}
        for i in range(copies):
            run = originals[i % len(originals)]
            new, shift = uuid.uuid4().hex, 1000 * (i // len(originals) + 1)
            batch["runs"].append({**run, "run_uuid": new, "start_time": run["start_time"] - shift,
                                  "end_time": run["end_time"] and run["end_time"] - shift})
            for name in ("tags", "params", "metrics", "latest_metrics"):
                batch[name] += [{**r, "run_uuid": new} for r in of[name].get(run["run_uuid"], ())]
            for r in of["inputs"].get(run["run_uuid"], ()):
                input_id = uuid.uuid4().hex
                batch["inputs"].append({**r, "input_uuid": input_id, "destination_id": new})
                tags = of["input_tags"].get(r["input_uuid"], ())
                batch["input_tags"] += [{**t, "input_uuid": input_id} for t in tags]
            if len(batch["runs"]) == 2000 or i == copies - 1:
                for name in TABLES:
                    if batch[name]:
                        conn.execute(tables[name].insert(), batch[name])
                batch = {name: [] for name in TABLES}
        held = conn.execute(sa.select(sa.func.count()).select_from(tables["runs"])).scalar()
    engine.dispose()
    return held


def into_postgres(sqlite_db: Path, url: str):
    """The seed store in a new PostgreSQL database: MLflow makes the schema, then every row is copied."""
    import sqlalchemy as sa

    from suite.stores import open_client

    open_client(url).search_experiments(max_results=1)  # MLflow creates and migrates its schema
    source, target = sa.create_engine(f"sqlite:///{sqlite_db}"), sa.create_engine(url)
    meta_s, meta_t = sa.MetaData(), sa.MetaData()
    with source.connect() as src, target.begin() as dst:
        dst.execute(sa.text("DELETE FROM experiment_tags"))
        dst.execute(sa.text("DELETE FROM experiments"))
        for name in COPIED:
            rows = [dict(r._mapping) for r in src.execute(sa.select(sa.Table(name, meta_s, autoload_with=source)))]
            if rows:
                dst.execute(sa.Table(name, meta_t, autoload_with=target).insert(), rows)
        dst.execute(sa.text("SELECT setval('experiments_experiment_id_seq', (SELECT max(experiment_id) FROM "
                            "experiments))"))
    source.dispose()
    target.dispose()


def _env(code: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(code), "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}


def timed(code: Path, argv: list[str], cwd: Path) -> tuple[float, str]:
    """Seconds `python -m suite ARGV` took with `code`'s suite, and the last line it printed (or its error)."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "suite", *argv], cwd=cwd, env=_env(code), capture_output=True,
                          text=True)
    seconds = time.perf_counter() - started
    lines = (done.stdout if done.returncode == 0 else done.stderr).strip().splitlines() or [""]
    if done.returncode:
        return seconds, f"exit {done.returncode}: {lines[-1]}"
    return seconds, lines[-1]


def first_fit(code: Path, argv: list[str], cwd: Path, limit: float = 900) -> tuple[float, str]:
    """Seconds from starting `python -m suite ARGV` with `code`'s suite to its first Trainer.fit; the command is
    then interrupted (Ctrl-C) and waited for."""
    started = time.time()
    proc = subprocess.Popen([sys.executable, "-c", FIRST_FIT, *argv], cwd=cwd, env=_env(code),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds, tail = float("nan"), ""
    for line in proc.stderr:
        tail = line.strip() or tail
        if line.startswith("FIRST_FIT "):
            seconds = float(line.split()[1]) - started
            proc.send_signal(signal.SIGINT)
            break
        if time.time() - started > limit:
            proc.kill()
            break
    proc.communicate(timeout=300)
    return seconds, ("first cell training" if seconds == seconds else f"no training began: {tail}")


def floor(cwd: Path) -> float:
    """Seconds Python takes to import what training and the store need (torch, Lightning, MLflow's SQL store)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", FLOOR], cwd=cwd, check=True)
    return time.perf_counter() - started


def measure(uri: str, codes: dict[str, Path], work: Path, label: str, profile: str,
            steps: tuple[str, ...] = STEPS) -> dict:
    """Each step with each code in turn: {(step, code): seconds}; the reports compared byte for byte."""
    base = ["--profile", profile, "--tracking-uri", uri]
    out, pages = {}, {}
    for step in steps:
        for k, (name, code) in enumerate(codes.items()):
            if step == "report":
                pages[name] = work / "reports" / f"{label}-{name}"
                argv = ["report", *base, "--out", str(pages[name])]
            elif step == "dry run":
                argv = ["benchmark", *base, "--dry-run", "--reuse-stale"]
            elif step == "benchmark":
                argv = ["benchmark", *base, "--reuse-stale"]
            if step == "start":  # a learning rate no run of the seed has: every cell of the plan is new
                lr = f"{0.00123 + 0.0001 * k:.5f}"  # and one per code: the first's cell is not the second's
                seconds, last = first_fit(code, ["benchmark", *base, "--set", f"train.lr={lr}"], work)
            else:
                seconds, last = timed(code, argv, work)
            out[(step, name)] = seconds
            print(f"  {label:<16} {step:<10} {name:<10} {seconds:7.1f} s   {last[:90]}", flush=True)
    if "start" in steps:
        out["imports"] = floor(work)
        print(f"  {label:<16} imports    (both)     {out['imports']:7.1f} s   {FLOOR}", flush=True)
    if len(pages) == 2:
        a, b = pages.values()
        same = _same_tree(a, b)
        out["same report"] = same
        print(f"  {label:<16} report bytes {'identical' if same else 'DIFFER'} ({a.name} vs {b.name})", flush=True)
    return out


def _same_tree(a: Path, b: Path) -> bool:
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    if files != sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file()):
        return False
    return all(filecmp.cmp(a / f, b / f, shallow=False) for f in files)


def checkout(rev: str, work: Path) -> Path:
    """The commit's tree in --work (a git worktree, made once)."""
    sha = subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.strip()
    tree = work / f"code-{sha}"
    if not tree.is_dir():
        subprocess.run(["git", "worktree", "add", "-f", "--detach", str(tree), sha], cwd=ROOT, check=True,
                       capture_output=True)
    return tree


def table(results: dict, codes: list[str], steps: tuple[str, ...] = STEPS) -> str:
    """Markdown: a row per store size and step, a column per code, and the ratio."""
    head = "| store | step | " + " | ".join(codes) + (" | before/after |" if len(codes) == 2 else " |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for label, found in results.items():
        for step in steps:
            times = [found[(step, c)] for c in codes]
            ratio = f" | {times[0] / times[1]:.1f}x" if len(codes) == 2 else ""
            lines.append(f"| {label} | {step} | " + " | ".join(f"{t:.1f} s" for t in times) + ratio + " |")
        if "imports" in found:
            lines.append(f"| {label} | imports (the floor under start) | " +
                         " | ".join(f"{found['imports']:.1f} s" for _ in codes) + (" | |" if len(codes) == 2 else " |"))
        if "same report" in found:
            lines.append(f"| {label} | report bytes | {'identical' if found['same report'] else 'DIFFER'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m suite.studies.scale", description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", default="50,5000,50000", help="store sizes on SQLite, comma-separated")
    p.add_argument("--postgres", default="5000", help="store sizes on PostgreSQL ('' for none)")
    p.add_argument("--against", help="a commit whose code is timed beside this tree's (e.g. HEAD~3)")
    p.add_argument("--profile", default="smoke", help="the benchmark the seed store holds")
    p.add_argument("--work", default=".scale", help="folder for the stores, the seed and the other code")
    p.add_argument("--steps", default=",".join(STEPS), help=f"which to time, comma-separated ({', '.join(STEPS)})")
    a = p.parse_args(argv)
    steps = tuple(x.strip() for x in a.steps.split(",") if x.strip())
    if set(steps) - set(STEPS):
        p.error(f"--steps: {', '.join(sorted(set(steps) - set(STEPS)))} is not one of {', '.join(STEPS)}")
    work = Path(a.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    sizes = [int(n) for n in a.runs.split(",") if n]
    pg_sizes = [int(n) for n in a.postgres.split(",") if n]
    codes = {"before": checkout(a.against, work)} if a.against else {}
    codes["after" if a.against else "this"] = ROOT
    db = seed(work, a.profile)
    results = {}
    for n in sizes:
        store = work / f"sqlite-{n}" / "mlflow.db"
        shutil.rmtree(store.parent, ignore_errors=True)
        store.parent.mkdir(parents=True)
        shutil.copy(db, store)
        held = multiply(f"sqlite:///{store}", n)
        print(f"SQLite store of {held} runs: {store}", flush=True)
        results[f"SQLite {held:,}"] = measure(f"sqlite:///{store}", codes, work, f"sqlite-{held}", a.profile, steps)
    if pg_sizes:
        from suite.pgtemp import Postgres

        with Postgres() as server:
            for n in pg_sizes:
                url = server.create(f"scale{n}")
                into_postgres(db, url)
                held = multiply(url, n)
                print(f"PostgreSQL store of {held} runs", flush=True)
                results[f"PostgreSQL {held:,}"] = measure(url, codes, work, f"postgres-{held}", a.profile, steps)
    text = table(results, list(codes), steps)
    (work / "scale.md").write_text(text + "\n")
    print("\n" + text + f"\n\n(written to {work / 'scale.md'})")
    return 0 if all(r.get("same report", True) for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
