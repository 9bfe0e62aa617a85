"""What the terminal prints after a run or a benchmark: the results table, read from the scores (suite/scoring.py)
as the report reads them, and fixed-width tables for the other commands."""
from __future__ import annotations

import dataclasses

from suite.runs import Run
from suite.scoring import boards


def outcome_runs(outcomes) -> list[Run]:
    """The matrix's outcomes as the runs they are (a skipped cell: its finished run), in the order they ran."""
    return [Run(o.run_id or "", "", "FAILED" if o.status == "FAILED" else "FINISHED", i, "", {**o.cell.tags, **o.tags},
                {f"train.{k}": str(v) for k, v in dataclasses.asdict(o.cell.train).items()}, o.metrics)
            for i, o in enumerate(outcomes)]


def results_table(outcomes) -> str:
    """A row per task setting and model: the test metric, loss against chance, the solved share, size and speed,
    and which model wins a setting by suite/compare.py's rule (best: beyond seed noise and chance; ≈best: tied)."""
    header = ("task", "T", "model", "seeds", "test metric", "test_loss", "loss/chance", "solved", "params", "samples/s",
              "epoch s", "verdict")
    rows, notes = [], []
    for board in boards(outcome_runs(outcomes)):
        s = board.setting
        for row in board.rows:
            st = row.stats
            metric = f"{board.metric} {st['test_metric'].text(board.metric)}" if row.runs else "FAILED"
            mark = {"best": "best", "tied": "≈best"}.get(st["test_metric"].mark, "-")
            rows.append((s.task + (f" ({s.variant})" if s.variant else ""), str(s.seq_len), row.label,
                         f"{len(row.runs)}/{len(row.runs) + len(row.failed)}", metric,
                         st["test_loss"].text("ratio"), st["test_vs_chance"].text("ratio"),
                         f"{row.solved[0]}/{row.solved[1]}" if row.solved else "-",
                         st["n_params"].text("count", spread=False), st["train_samples_per_s"].text("rate"),
                         st["epoch_time_s"].text("seconds"), mark))
        if sum(bool(r.runs) for r in board.rows) > 1 and board.verdict.reason:
            notes.append(f"{s.label}: no winner ({board.verdict.reason})")
    return "\n".join([aligned(header, rows, left={0, 2, 4, 11}), *notes])


def overall_block(outcomes, banner: str = "", found=(), recipe=None) -> str:
    """The answer across the settings (suite/overall.py), as the report's index states it first, after the
    profile's banner (what a reader must know before any number): how far it holds in one sentence
    (suite/robustness.py), the table, the verdict at each budget and each model's learning-rate window (`found`:
    what the recipe searches found; `recipe`: their settings)."""
    from suite.overall import HEADERS, headline, notes, recipes, table_rows
    from suite.recipe import WINDOW
    from suite.robustness import SHARE_TEXT, budgets, edge_note, robust_share, sentence, windows

    runs = outcome_runs(outcomes)
    kind = next(iter(recipes(boards(runs))), None)
    verdicts = budgets(runs, recipe=kind)
    o = verdicts[-1].overall
    lines = ["", "Overall", *([f"** {banner} **"] if banner else []), sentence(verdicts, kind, list(found)),
             headline(o)]
    if o.contenders:
        rows = table_rows(o)
        lines.append(aligned([HEADERS[k] for k in rows[0]], [list(r.values()) for r in rows], left={0, 1, 5}))
    lines += notes(o)
    if o.contenders:
        lines += ["", "The verdict at each share of the budget (each scored run tested after that share of its "
                      "epochs):", aligned(["budget", "leads (and cannot be told from it)", "IQM of the first"], [
                          [SHARE_TEXT[b.share], b.text, f"{b.overall.contenders[0].iqm:.3f}" if b.overall.contenders
                           else "–"] for b in verdicts], left={0, 1})]
    if found:
        share = robust_share(list(found))
        lines += ["", f"Learning-rate windows (recipe search on seed {recipe.seed}: the points within {WINDOW:g} of "
                      "the best validation score, compared at the rung each reached):",
                  aligned(["model", "setting", "chosen", "window", "width", "robust"], [
                      [w["model"], w["setting"].label, w["chosen"], w["window"],
                       "–" if w["width"] is None else f"×{w['width']:.3g}", f"{share[w['model']]:.2f}"]
                      for w in windows(list(found))], left={0, 1, 2, 3})]
        lines += [note] if (note := edge_note(list(found))) else []
    return "\n".join(lines)


def aligned(header, rows, left: set[int]) -> str:
    """A fixed-width text table: the columns in `left` left-aligned, the others right-aligned."""
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]

    def line(r):
        columns = enumerate(zip(r, widths, strict=True))
        return "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in columns)

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])

