"""The layout holds: no import cycles, small modules, a CLI that only parses and dispatches, and tasks/ that
depends on suite/ only through its two leaf modules."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("suite", "tasks")
LEAVES = {"suite.errors", "suite.schema"}  # what tasks/ may import from suite/: they import nothing of ours


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(path: Path, name: str, known: set[str]) -> set[str]:
    """Every module of ours that `name` imports, at the top or inside a function (a lazy import is still one)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        out |= {t for t in targets if t in known and t != name}
    return out


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(path, name, set(found)) for name, path in found.items()}


def test_no_import_cycles():
    edges, state, cycles = graph(), {}, []

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_tasks_use_only_the_leaf_modules_of_suite():
    edges = graph()
    for name, targets in edges.items():
        if name.startswith("tasks"):
            assert {t for t in targets if t.startswith("suite")} <= LEAVES, name
    for leaf in LEAVES:
        assert edges[leaf] == set(), leaf


def test_modules_are_small_and_the_cli_is_a_table_of_contents():
    sizes = {name: len(path.read_text().splitlines()) for name, path in modules().items()}
    assert {n: s for n, s in sizes.items() if s > 300} == {}
    assert sizes["suite.cli"] < 250
    tree = ast.parse((ROOT / "suite" / "cli.py").read_text())
    bodies = {f.name: f.end_lineno - f.lineno for f in tree.body if isinstance(f, ast.FunctionDef)
              and f.name.startswith("cmd_")}
    assert bodies and {n: lines for n, lines in bodies.items() if lines > 15} == {}


def test_every_command_talks_to_mlflow_through_the_one_client():
    """An MlflowClient is made in stores.py only (`open_client`, whose calls Ctrl-C does not cut in half)."""
    makers = {name for name, path in modules().items() if name.startswith("suite")
              for node in ast.walk(ast.parse(path.read_text()))
              if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "MlflowClient"}
    assert makers == {"suite.stores"}


def _calls(attr_names: set[str]) -> dict[str, set[str]]:
    """module -> the names in `attr_names` it calls as methods (client.create_run(...) and the like)."""
    found = {}
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in attr_names:
                found.setdefault(name, set()).add(node.func.attr)
    return found


def test_every_run_is_made_and_ended_by_the_one_lifecycle():
    """Runs are created and ended in tracking.py (open_run); the reaper ends other workers' stale runs."""
    assert set(_calls({"create_run", "delete_run"})) == {"suite.tracking"}
    assert set(_calls({"set_terminated"})) == {"suite.tracking", "suite.cluster"}


def test_no_listing_stops_at_a_silent_cap():
    """A search for many results goes through stores.every (page by page); only a probe for one result is capped."""
    capped = set()
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr.startswith(
                    "search_"):
                limit = next((k.value for k in node.keywords if k.arg == "max_results"), None)
                if not (isinstance(limit, ast.Constant) and limit.value == 1):
                    capped.add(f"{name}: {node.func.attr}")
    assert capped == set()


def test_roles_are_one_vocabulary_and_the_core_knows_no_optuna():
    role_words = ('"rnnbench_role"', '"sweep_cell"', '"repro_cell"', '"reference_run"', '"speed_probe"')
    spelled = {name for name, path in modules().items() if name != "suite.roles"
               and any(w in path.read_text() for w in role_words)}
    assert spelled == set()
    core = {n for n in graph() if n in ("suite.runner", "suite.matrix", "suite.train", "suite.module")}
    assert {n for n in core if "optuna" in (ROOT / (n.replace(".", "/") + ".py")).read_text()} == set()
