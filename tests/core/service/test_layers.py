"""The layers the map service stands between, checked on the source (issue 26's targets): the
node is an adapter that reaches the engine only through the service, and stays small."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
NODE_MAY_IMPORT = ("cgc_core.service", "cgc_core.cameras", "cgc_core.data.messages")
"""The service layer, and the geometry types and message decoding conversions.py shares with
the bag reader."""


def imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def test_the_node_reaches_cgc_core_only_through_the_service():
    for path in sorted((ROOT / "cgc_ros").glob("*.py")):
        for name in imports(path):
            if name.startswith("cgc_core"):
                assert name.startswith(NODE_MAY_IMPORT), f"{path.name} imports {name}"
            assert not name.startswith("cgc_eval"), f"{path.name} imports {name}"


def test_the_node_is_small_enough_to_read_in_one_sitting():
    lengths = {p.name: len(p.read_text().splitlines()) for p in (ROOT / "cgc_ros").glob("*.py")}
    assert sum(lengths.values()) <= 900, lengths
    assert max(lengths.values()) <= 300, lengths


def test_cgc_core_never_imports_ros():
    for path in sorted((ROOT / "cgc_core").rglob("*.py")):
        for name in imports(path):
            top = name.split(".")[0]
            assert top not in ("rclpy", "cgc_ros", "cgc_eval", "sensor_msgs", "std_msgs",
                               "geometry_msgs"), f"{path.relative_to(ROOT)} imports {name}"
