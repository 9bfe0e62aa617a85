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
  start       `rnnbench run --force` of one cell: the skip check, the claim against the other runs of its
              settings, then training (a second or two here)
--reuse-stale: where the two codes' fingerprints differ (a change to the training core), neither retrains the seed's
cells; their reports then differ where they say whose code a result ran (the byte check is for codes that agree).
PostgreSQL (--postgres N) runs on a throw-away server (suite/pgtemp.py), the store copied into it.
"""
from __future__ import annotations

import argparse
import filecmp
import os
import shutil
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


def timed(code: Path, argv: list[str], cwd: Path) -> tuple[float, str]:
    """Seconds `python -m suite ARGV` took with `code`'s suite, and the last line it printed (or its error)."""
    env = {**os.environ, "PYTHONPATH": str(code), "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "suite", *argv], cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    lines = (done.stdout if done.returncode == 0 else done.stderr).strip().splitlines() or [""]
    if done.returncode:
        return seconds, f"exit {done.returncode}: {lines[-1]}"
    return seconds, lines[-1]


def measure(uri: str, codes: dict[str, Path], work: Path, label: str, profile: str) -> dict:
    """Each step with each code in turn: {(step, code): seconds}; the reports compared byte for byte."""
    base = ["--profile", profile, "--tracking-uri", uri]
    out, pages = {}, {}
    for step in STEPS:
        for name, code in codes.items():
            if step == "report":
                pages[name] = work / "reports" / f"{label}-{name}"
                argv = ["report", *base, "--out", str(pages[name])]
            elif step == "dry run":
                argv = ["benchmark", *base, "--dry-run", "--reuse-stale"]
            elif step == "benchmark":
                argv = ["benchmark", *base, "--reuse-stale"]
            else:
                argv = ["run", *base, "--model", "rnn", "--task", "copy", "--force"]
            seconds, last = timed(code, argv, work)
            out[(step, name)] = seconds
            print(f"  {label:<16} {step:<10} {name:<10} {seconds:7.1f} s   {last[:90]}", flush=True)
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


def table(results: dict, codes: list[str]) -> str:
    """Markdown: a row per store size and step, a column per code, and the ratio."""
    head = "| store | step | " + " | ".join(codes) + (" | before/after |" if len(codes) == 2 else " |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for label, found in results.items():
        for step in STEPS:
            times = [found[(step, c)] for c in codes]
            ratio = f" | {times[0] / times[1]:.1f}x" if len(codes) == 2 else ""
            lines.append(f"| {label} | {step} | " + " | ".join(f"{t:.1f} s" for t in times) + ratio + " |")
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
    a = p.parse_args(argv)
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
        results[f"SQLite {held:,}"] = measure(f"sqlite:///{store}", codes, work, f"sqlite-{held}", a.profile)
    if pg_sizes:
        from suite.pgtemp import Postgres

        with Postgres() as server:
            for n in pg_sizes:
                url = server.create(f"scale{n}")
                into_postgres(db, url)
                held = multiply(url, n)
                print(f"PostgreSQL store of {held} runs", flush=True)
                results[f"PostgreSQL {held:,}"] = measure(url, codes, work, f"postgres-{held}", a.profile)
    text = table(results, list(codes))
    (work / "scale.md").write_text(text + "\n")
    print("\n" + text + f"\n\n(written to {work / 'scale.md'})")
    return 0 if all(r.get("same report", True) for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
