"""Shared fixtures: the vector fixture repository and small git repositories."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.support.registry import Registry

HERE = Path(__file__).parent
VECTORS = HERE / "vectors"

GIT_ENV = {
    "GIT_AUTHOR_NAME": "test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
}


def git(root: Path, *args: str) -> str:
    """Run git in ``root`` with a fixed identity; returns stdout."""
    result = subprocess.run(
        ["git", *args],
        cwd=root,
        env={**os.environ, **GIT_ENV},
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout


def write_tree(root: Path, files: Mapping[str, str | bytes]) -> None:
    """Write ``files`` (path -> content) under ``root``."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)


MakeRepo = Callable[..., Path]


@pytest.fixture
def make_repo(tmp_path: Path) -> MakeRepo:
    """Create a committed git repository from ``{path: content}``."""
    counter = iter(range(1_000_000))

    def make(files: Mapping[str, str | bytes], *, commit: bool = True) -> Path:
        root = tmp_path / f"repo{next(counter)}"
        root.mkdir()
        write_tree(root, files)
        git(root, "init", "-q", "-b", "main")
        if commit:
            git(root, "add", "-A")
            git(root, "commit", "-q", "--allow-empty", "-m", "init")
        return root

    return make


@pytest.fixture(scope="session")
def fixture_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fingerprint-vector repository built by ``vectors/make_fixture.py``."""
    dest = tmp_path_factory.mktemp("vectors") / "fixture"
    subprocess.run([sys.executable, str(VECTORS / "make_fixture.py"), str(dest)], check=True)
    return dest


@pytest.fixture(autouse=True)
def _reset_structlog() -> None:
    """Each test starts from structlog's defaults (the CLI configures it)."""
    import structlog

    from mzbuild_async.support import logs

    structlog.reset_defaults()
    logs.reset()


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio (the backend the CLI uses)."""
    return "asyncio"


@pytest.fixture(scope="session")
def registries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Registry]]:
    """Real docker-registry servers: no auth, htpasswd and token auth, for the session."""
    from contextlib import ExitStack

    from tests.support.registry import run_registry

    with ExitStack() as stack:
        yield {
            auth: stack.enter_context(run_registry(tmp_path_factory.mktemp(f"reg-{auth}"), auth))
            for auth in ("none", "htpasswd", "token")
        }


@pytest.fixture
def demo_cli(tmp_path: Path, registries: dict[str, Registry]) -> Iterator[object]:
    """The demo repository and a CLI runner with its own image path (a real engine needed)."""
    import uuid

    import anyio

    from tests.support.demo import Cli, make_demo
    from tests.support.engine import engine, remove_images

    async def engine_up() -> None:  # fails under CI=true when there is none
        await (await engine()).close()

    anyio.run(engine_up)
    repo = make_demo(tmp_path / "demo")
    prefix = f"{registries['none'].host}/d{uuid.uuid4().hex[:10]}"
    yield Cli(repo, prefix, tmp_path / "cache")
    remove_images(prefix)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Stop the extra Docker engines the pool tests started (only those)."""
    from tests.support.pool import stop_started

    stop_started()
