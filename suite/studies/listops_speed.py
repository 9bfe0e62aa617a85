"""ListOps at Long Range Arena's settings: expressions drawn a second by the generator before this sampler (its
source at BEFORE), by LRA's own generator, and by ours; the first, uncached draw of LRA's 96,000 + 2,000 + 2,000;
and the time from a fresh process's start to the first training batch once they are cached.

    python -m suite.studies.listops_speed [--seconds 60] [--before 4b3e572] [--n-train 96000]

Each part runs in its own process, the cache in a temporary folder ($RNNBENCH_CACHE).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LRA = {"seq_len": 1999, "min_len": 501, "max_depth": 10, "max_args": 10}  # LRA's 500 < length < 2,000

BEFORE = """
import importlib.util, json, random, sys, time
spec = importlib.util.spec_from_file_location("listops_before", sys.argv[1])
old = importlib.util.module_from_spec(spec)
spec.loader.exec_module(old)
seq_len, min_len, depth, args, seconds = (int(a) for a in sys.argv[2:])
rng, drawn, kept, start = random.Random(11), 0, 0, time.perf_counter()
while time.perf_counter() - start < seconds:  # the old dataset()'s loop, counted
    drawn += 1
    try:
        tokens = old.tree(rng, 1, depth, args, [seq_len])
    except old.TooLong:
        continue
    kept += min_len <= len(tokens) <= seq_len
print(json.dumps({"kept": kept, "drawn": drawn, "s": time.perf_counter() - start}))
"""

LRA_GENERATOR = """
import json, random, sys, time
seq_len, min_len, max_depth, max_args, seconds = (int(a) for a in sys.argv[1:])

def generate_tree(depth):  # lra_benchmarks/data/listops.py, the tree itself left out
    r = random.random() if depth < max_depth else 1
    if r > 0.25:
        random.choice(range(10))
        return 1
    length = 2
    for _ in range(random.randint(2, max_args)):
        length += generate_tree(depth + 1)
    random.choice(range(4))
    return length

random.seed(11)
drawn, kept, start = 0, 0, time.perf_counter()
while time.perf_counter() - start < seconds:
    drawn += 1
    kept += min_len <= generate_tree(1) <= seq_len
print(json.dumps({"kept": kept, "drawn": drawn, "s": time.perf_counter() - start}))
"""

DRAW = """
import json, sys, time
from tasks.listops import ListOps, ListOpsConfig, dataset
task = ListOps(ListOpsConfig(**json.loads(sys.argv[1])))
times = {}
for split, n in (("train", task.cfg.n_train), ("val", task.cfg.n_eval), ("test", task.cfg.n_eval)):
    start = time.perf_counter()
    dataset(task._key(), n, task.SEEDS[split])
    times[split] = time.perf_counter() - start
print(json.dumps(times))
"""

FIRST_BATCH = """
import json, sys, time
from suite.data import Batches
from tasks.listops import ListOps, ListOpsConfig, dataset
imported = time.time()
task = ListOps(ListOpsConfig(**json.loads(sys.argv[1])))
for split, n in (("train", task.cfg.n_train), ("val", task.cfg.n_eval), ("test", task.cfg.n_eval)):
    dataset(task._key(), n, task.SEEDS[split])  # the cache read (kept in memory for splits())
read = time.time()
x, y = next(iter(Batches(*task.splits(0, 0, "cpu")["train"], 32, shuffle_seed=0)))
print(json.dumps({"imported": imported, "read": read, "batch": time.time(), "shape": list(x.shape)}))
"""


def child(code: str, *argv, env=None) -> tuple[dict, float]:
    """Run `code` in a fresh interpreter from the repository root: its printed JSON and the wall time from launch."""
    start = time.time()
    out = subprocess.run([sys.executable, "-c", code, *map(str, argv)], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2], env={**os.environ, **(env or {})})
    return json.loads(out.stdout.strip().splitlines()[-1]), start


def main(argv=None) -> int:
    """Print each figure as it is measured."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=int, default=60, help="how long the rejection generators draw")
    p.add_argument("--before", default="4b3e572", help="the commit whose tasks/listops.py is 'before'")
    p.add_argument("--n-train", type=int, default=96_000)
    args = p.parse_args(argv)
    root = Path(__file__).resolve().parents[2]
    settings = (LRA["seq_len"], LRA["min_len"], LRA["max_depth"], LRA["max_args"])
    print(f"ListOps at LRA's settings: lengths {LRA['min_len']}-{LRA['seq_len']}, depth {LRA['max_depth']}, "
          f"up to {LRA['max_args']} arguments")
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "listops_before.py"
        old.write_bytes(subprocess.run(["git", "show", f"{args.before}:tasks/listops.py"], cwd=root,
                                       capture_output=True, check=True).stdout)
        rejecting = ((f"before ({args.before})", BEFORE, [old]), ("LRA's generator", LRA_GENERATOR, []))
        for name, code, extra in rejecting:
            got, _ = child(code, *extra, *settings, args.seconds)
            print(f"{name:>22}: {got['kept']} kept of {got['drawn']:,} drawn in {got['s']:.0f} s = "
                  f"{got['kept'] / got['s']:.2f} expressions/s")
        cfg = json.dumps({**LRA, "n_train": args.n_train, "n_eval": 2_000})
        env = {"RNNBENCH_CACHE": str(Path(tmp) / "cache")}
        times, _ = child(DRAW, cfg, env=env)
        total, took = args.n_train + 4_000, sum(times.values())
        each = ", ".join(f"{k} {v:.1f} s" for k, v in times.items())
        print(f"{'ours, uncached':>22}: {total:,} in {took:.1f} s = {total / took:,.0f} expressions/s ({each})")
        size = sum(f.stat().st_size for f in (Path(tmp) / "cache").rglob("*.npz"))
        got, start = child(FIRST_BATCH, cfg, env=env)
        print(f"{'ours, cached':>22}: first batch {got['shape']} {got['batch'] - start:.1f} s after the process "
              f"started: imports {got['imported'] - start:.1f} s, reading {size / 2**20:,.0f} MiB of cache "
              f"{got['read'] - got['imported']:.1f} s, one-hot splits and the batch {got['batch'] - got['read']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
