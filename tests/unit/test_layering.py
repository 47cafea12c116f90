"""The runtime's layers, enforced: data flows one way, so each layer imports only those below it.

    foundation (config, log, imageio, imageheader, memory, options, paths, rounding, labels)
    model (contract, interpreter)
    recognition | vision          (siblings: neither imports the other)
    page                          (reader, build, result, cache, diff)
    http                          (api, prometheus, web page: sees the daemon through protocols)
    daemon                        (service, capture, gate, delivery, sinks, health, outbox, mqtt)
    archive                       (subscriber, ingest, store and engines, lessons, search, web, export)
    tools                         (watch, bench)
    cli

And the device runtime stays lean: no TensorFlow or PyTorch, nothing from the toolchain."""

import ast
import subprocess
import sys
from pathlib import Path

from edge_ocr.paths import ROOT

PKG = ROOT / "edge_ocr"
FORBIDDEN = {"tensorflow", "tf_keras", "keras", "torch", "toolchain"}
LAYERS = [{"config", "log", "imageio", "imageheader", "memory", "options", "paths", "rounding", "labels", "__init__"},
          {"model"}, {"recognition", "vision"}, {"page"}, {"http"}, {"daemon"}, {"archive"}, {"tools"}, {"cli"},
          {"__main__"}]
RANK = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}


def _imports(path: Path) -> list[str]:
    """Every module ``path`` imports (at any depth of the file), as dotted names."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names += [f"{node.module}.{a.name}" if node.module == "edge_ocr" else node.module for a in node.names]
    return names


def _modules() -> dict[str, list[str]]:
    """edge_ocr module (dotted, without the package) → the edge_ocr modules it imports."""
    out = {}
    for path in PKG.rglob("*.py"):
        name = ".".join(path.relative_to(PKG).with_suffix("").parts)
        out[name] = [n.removeprefix("edge_ocr.") for n in _imports(path) if n.startswith("edge_ocr.")]
    return out


def test_runtime_imports_no_training_frameworks() -> None:
    offenders = [f"{p.relative_to(PKG)}: {n}" for p in PKG.rglob("*.py") for n in _imports(p)
                 if n.split(".")[0] in FORBIDDEN]
    assert not offenders, offenders


def test_every_module_has_a_layer() -> None:
    assert not [m for m in _modules() if m.split(".")[0] not in RANK], "add new top-level modules to LAYERS"


def upward(modules: dict[str, list[str]]) -> list[str]:
    """Imports of a higher layer, or of a sibling package in the same layer (foundation modules
    may import each other)."""
    offenders = []
    for module, deps in modules.items():
        top = module.split(".")[0]
        for dep in deps:
            other = dep.split(".")[0]
            if other not in RANK:
                continue  # ``from edge_ocr import __version__``
            if RANK[other] > RANK[top] or (RANK[other] == RANK[top] and other != top and RANK[top] != 0):
                offenders.append(f"{module} imports {dep}")
    return offenders


def test_no_upward_or_sideways_import() -> None:
    assert not upward(_modules())


def test_nothing_but_the_cli_imports_tools() -> None:
    assert not [f"{m} imports {d}" for m, deps in _modules().items() for d in deps
                if d.startswith("tools") and not m.startswith(("tools", "cli"))]


def test_no_import_cycle() -> None:
    graph = {m: {d for d in deps if d in _modules()} for m, deps in _modules().items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycles.append(" → ".join([*trail[trail.index(nxt):], nxt]) if nxt in trail else f"{node} → {nxt}")
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for m in graph:
        if m not in state:
            visit(m, [m])
    assert not cycles, cycles


def test_layering_check_catches_upward_and_sideways_imports() -> None:
    """The checker itself, on made-up modules: page → daemon and vision → recognition are
    reported; page → vision, daemon → http and config → options are not."""
    made_up = {"page.reader": ["daemon.service", "vision.surface"], "vision.db": ["recognition.ctc"],
               "daemon.service": ["http.api"], "config": ["options"]}
    assert upward(made_up) == ["page.reader imports daemon.service", "vision.db imports recognition.ctc"]


def test_serve_loads_no_daemon_code() -> None:
    """``edge-ocr serve`` (the API and web page alone): the CLI, the API and the page reader load
    no daemon, MQTT, outbox or tool code."""
    code = ("import sys; from edge_ocr import cli; from edge_ocr.http.api import build_api; "
            "from edge_ocr.page.build import build_reader; "
            "print(sorted(m for m in sys.modules if m.startswith(('edge_ocr.daemon', 'edge_ocr.tools', 'paho'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stdout
