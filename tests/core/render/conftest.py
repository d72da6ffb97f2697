"""Makes the plain helper module `render_scenes` importable by the render tests.

pytest here imports test modules without putting their folder on sys.path, and the tests folders
are not packages, so the folder is added explicitly.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
