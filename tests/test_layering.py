"""The device runtime must stay lean: no TensorFlow or PyTorch, and no imports from convert/."""

import ast
from pathlib import Path

FORBIDDEN = {"tensorflow", "tf_keras", "keras", "torch", "convert"}


def test_runtime_imports_no_training_frameworks() -> None:
    pkg = Path(__file__).resolve().parent.parent / "edge_ocr"
    offenders = []
    for path in pkg.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert not offenders, offenders
