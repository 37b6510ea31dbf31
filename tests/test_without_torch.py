"""The suite without torch: every test that does not need torch runs, the others skip one by one.

shapecalc installs without torch (``out``, ``check``, ``summary --no-verify`` need none), so its
pure tests must run there too. A module-level ``importorskip("torch")`` (or ``import torch``)
would skip or break a whole module; tests that need torch are marked ``@pytest.mark.torch``
instead (conftest.py skips them, one line each, where torch is missing).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).parent


def _module_level_torch(tree: ast.Module) -> list[int]:
    """Lines of module-level statements that need torch to import the module (a try/except ImportError is fine)."""
    found = []
    for node in tree.body:  # only module level: inside a function or class, an import runs with its test
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "torch" for a in node.names):
            found.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "torch":
            found.append(node.lineno)
        elif isinstance(node, ast.Assign | ast.Expr):
            call = node.value
            if (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Attribute)
                and call.func.attr == "importorskip"
                and call.args
                and isinstance(call.args[0], ast.Constant)
                and call.args[0].value == "torch"
            ):
                found.append(node.lineno)
    return found


def test_no_test_module_needs_torch_to_import() -> None:
    offenders = [
        f"{path.name}:{line}"
        for path in sorted(TESTS.glob("*.py"))
        for line in _module_level_torch(ast.parse(path.read_text()))
    ]
    assert offenders == [], "mark the tests @pytest.mark.torch and import torch inside them or in a try"


def test_the_check_sees_a_module_level_skip() -> None:
    source = 'import pytest\ntorch = pytest.importorskip("torch")\nfrom torch import nn\ndef f():\n    import torch\n'
    assert _module_level_torch(ast.parse(source)) == [2, 3]


def test_torch_marked_tests_skip_alone_without_torch() -> None:
    # a test module with a pure test and a torch test, run where `import torch` fails
    code = (
        "import sys, pytest\n"
        "sys.modules['torch'] = None\n"  # import torch raises ImportError; find_spec says it is missing
        f"sys.exit(pytest.main(['-q', '-rs', '-p', 'no:cacheprovider', {str(TESTS / 'test_gate_split.py')!r},"
        " '-k', 'loader_errors or compute_what_they_say']))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=TESTS.parent)
    assert out.returncode == 0, out.stdout + out.stderr
    summary = out.stdout.strip().splitlines()
    assert any(
        "test_gate_split.py" in line
        and "needs torch, which is not installed (pip install 'shapecalc-cnn[torch]')" in line
        for line in summary
    ), out.stdout
    last = summary[-1]
    assert " passed" in last and "1 skipped" in last and "failed" not in last, last
