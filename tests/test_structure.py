"""The package's shape: parts import downward only, no cycles between parts, no file over 400 lines.

The import graph is read from the source with ``ast`` (every ``import``, including the ones inside
functions: a lazy import is still a dependency), so the test needs no third-party tool and runs in
milliseconds. A *part* is the first name below ``gsbench`` (``methods``, ``codec``, ``__main__``...).

Today's exceptions are listed, each with the reason, in allow-lists that can only shrink: an entry that
no longer matches anything fails the test too, so whoever removes a violation also removes its entry.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "gsbench"

# Top to bottom (docs/extending.md and ../shared/DESIGN.md draw the same picture). A part may import the
# parts of any lower layer; parts of one layer are independent of each other.
LAYERS: list[tuple[str, ...]] = [
    ("__main__", "train_init", "report"),  # entry points; report reads records (see REPORT_MAY_IMPORT)
    # start-up: config checks and validation read the method registry and set the bitstream limits
    ("runner", "config", "validation"),
    ("methods",),
    ("gaussians", "codec", "data", "loggers"),
    # the table columns read the metric registry; metrics (a leaf: images in, numbers out) sit below them
    ("kernels", "columns"),
    ("metrics",),
    # the record schema: the runner writes it, the report reads it
    ("registry", "errors", "records", "__init__"),
]
# The report turns records into tables; it must not need the code that produced them.
REPORT_MAY_IMPORT = {"registry", "errors", "metrics", "records", "columns", "__init__"}

# (importer, imported) module pairs that break a contract today, each with why it is still there.
ALLOWED_VIOLATIONS: dict[tuple[str, str], str] = {
    # A contact sheet shows a .gsb's pixels when its record kept no reconstruction PNG: that needs the
    # decoder (through the method registry) and the renderer's options.
    ("gsbench.report.contact", "gsbench.methods"): "contact sheets decode a bitstream without a PNG",
    ("gsbench.report.contact", "gsbench.gaussians.render"): "contact sheets decode a bitstream without a PNG",
}

MAX_LINES = 400
# Files over MAX_LINES today; each entry may only go (when the file is split) or have its limit lowered.
ALLOWED_LONG_FILES: dict[str, int] = {
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The gsbench modules that ``name`` imports (``from pkg import sub`` counts as ``pkg.sub``)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in known]
            found.update(subs or [target])
    return {t for t in found if t == "gsbench" or t.startswith("gsbench.")}


def part(module: str) -> str:
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else "__init__"


def graph() -> dict[str, set[str]]:
    """Module -> the gsbench modules it imports, for every module of the package."""
    mods = modules()
    return {name: imports_of(name, path, set(mods)) for name, path in mods.items()}


def layer_of() -> dict[str, int]:
    return {p: i for i, layer in enumerate(LAYERS) for p in layer}


def violations() -> dict[tuple[str, str], str]:
    """Every (importer, imported) pair that breaks a contract, with the contract it breaks."""
    layers = layer_of()
    found: dict[tuple[str, str], str] = {}
    for importer, targets in graph().items():
        src = part(importer)
        for imported in targets:
            dst = part(imported)
            if src == dst:
                continue
            if src == "kernels":
                found[importer, imported] = "gsbench.kernels imports nothing else from gsbench"
            elif src == "report" and dst not in REPORT_MAY_IMPORT:
                found[importer, imported] = (
                    f"report reads records; it may import only {sorted(REPORT_MAY_IMPORT)}"
                )
            elif layers[dst] == layers[src]:
                found[importer, imported] = f"{src} and {dst} are in one layer and must not import each other"
            elif layers[dst] < layers[src]:
                found[importer, imported] = f"{src} is below {dst} and must not import it"
    return found


def test_every_part_has_a_layer():
    parts = {part(m) for m in modules()}
    unplaced = parts - set(layer_of())
    assert not unplaced, (
        f"place these parts of gsbench in LAYERS (tests/test_structure.py): {sorted(unplaced)}"
    )


def test_imports_point_down_only():
    found = violations()
    new = {edge: why for edge, why in found.items() if edge not in ALLOWED_VIOLATIONS}
    assert not new, "imports that break the layering:\n" + "\n".join(
        f"  {a} -> {b}: {why}" for (a, b), why in sorted(new.items())
    )


def test_allowed_violations_only_shrink():
    stale = sorted(set(ALLOWED_VIOLATIONS) - set(violations()))
    assert not stale, f"these imports are gone: remove them from ALLOWED_VIOLATIONS: {stale}"


def test_no_cycles_between_parts():
    edges: dict[str, set[str]] = defaultdict(set)
    for importer, targets in graph().items():
        edges[part(importer)].update(part(t) for t in targets if part(t) != part(importer))
    cycles = [c for c in strongly_connected(edges) if len(c) > 1]
    assert not cycles, f"import cycles between parts: {cycles}"


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components (recursive: the graph has about twenty nodes)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))

    for v in sorted(set(edges) | {w for ws in edges.values() for w in ws}):
        if v not in index:
            visit(v)
    return out


def test_the_checker_sees_a_cycle_and_a_lazy_import():
    """The checker itself: a cycle is found, and an import inside a function counts."""
    assert strongly_connected({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"], ["c"]]
    tree = graph()
    # imported inside a function
    assert "gsbench.gaussians.raster_torch" in tree["gsbench.gaussians.backends"]


def line_counts() -> dict[str, int]:
    return {p.relative_to(PACKAGE).as_posix(): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}


def test_no_file_over_the_line_limit():
    long = {f: n for f, n in line_counts().items() if n > ALLOWED_LONG_FILES.get(f, MAX_LINES)}
    assert not long, (
        f"files over {MAX_LINES} lines (split them; the allow-list only shrinks): {sorted(long.items())}"
    )


def test_long_file_allow_list_only_shrinks():
    counts = line_counts()
    stale = sorted(f for f in ALLOWED_LONG_FILES if counts.get(f, 0) <= MAX_LINES)
    assert not stale, (
        f"these files are at most {MAX_LINES} lines now: remove them from ALLOWED_LONG_FILES: {stale}"
    )


def test_every_metric_reaches_the_report():
    """The report's metric columns are the registry's: a registered metric cannot be left out of a table."""
    from gsbench.metrics import REGISTRY
    from gsbench.report.aggregate import metric_names, record_row

    assert metric_names() == REGISTRY.names()
    assert set(REGISTRY.names()) <= set(record_row({}))
