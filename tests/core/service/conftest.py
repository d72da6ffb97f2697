"""Makes the objects tests' hand-built models (`box_scenes`) importable by the service tests
(the tests folders are not packages; see tests/core/render/conftest.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "objects"))
