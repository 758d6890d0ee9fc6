"""The layering the README draws, as checks: the environment is read by the command line."""

from __future__ import annotations

import ast
from pathlib import Path

import mzbuild_async

PACKAGE = Path(mzbuild_async.__file__).parent

#: Places below cli/ that may touch the process environment, and why. Each is a
#: library default for a caller that passes none, or a child process's environment.
ALLOWED = {
    # Repository.open(options=None, cache_dir=None): the original's defaults for scripts.
    "source/repository.py": 2,
    # git runs with the caller's environment (plus GIT_OPTIONAL_LOCKS=0).
    "source/gitview.py": 1,
    # RegistryClient() and CredentialStore() made by a script without settings.
    "registry/client.py": 1,
    "registry/auth.py": 1,
    # RunOptions() made by a script: the run works in the process's environment.
    "workflow/options.py": 1,
}


def environment_reads(path: Path) -> int:
    """How many times ``path`` names ``os.environ`` or calls ``os.getenv``."""
    tree = ast.parse(path.read_text())
    return sum(
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "os"
        and node.attr in ("environ", "getenv", "environb")
        for node in ast.walk(tree)
    )


def test_nothing_below_the_command_line_reads_the_environment() -> None:
    """Settings carry the environment down; modules below cli/ take it as an argument."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.startswith("cli/") or relative == "__main__.py":
            continue
        reads = environment_reads(path)
        if reads:
            found[relative] = reads
    assert found == ALLOWED


def test_the_guard_sees_an_environment_read(tmp_path: Path) -> None:
    """The check counts both spellings (it is not vacuous)."""
    module = tmp_path / "m.py"
    module.write_text("import os\nA = os.environ.get('X')\nB = os.getenv('Y')\n")
    assert environment_reads(module) == 2
