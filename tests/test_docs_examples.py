"""The API guide's examples run as written, against the demo repository and a real
registry and engine: each ``python`` block of docs/guide/api.md, in order, in one
namespace, with only the demo's path and registry put where this test has them (the
testing-kit block is run by tests/test_testing_kit.py, on its own seam)."""

from __future__ import annotations

import gc
import re
from pathlib import Path

import pytest

from tests.support.demo import make_demo
from tests.support.engine import remove_images
from tests.support.registry import Registry

pytestmark = [pytest.mark.real, pytest.mark.slow]

GUIDE = Path(__file__).parents[1] / "docs" / "guide" / "api.md"
#: What the examples name, as scripts/demo leaves it.
DEMO_PATH, DEMO_REGISTRY = "/tmp/mzbuild-async-demo/repository", "127.0.0.1:5577/demo"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.DOTALL)


def test_the_api_guide_runs_as_written(
    tmp_path: Path, registries: dict[str, Registry], capsys: pytest.CaptureFixture[str]
) -> None:
    blocks = [b for b in _blocks() if "mzbuild_async.testing" not in b]
    assert len(blocks) == 3, "the guide's examples changed: say here how to run them"
    repo = make_demo(tmp_path / "demo")
    prefix = f"{registries['none'].host}/docs{tmp_path.name[-6:]}"
    namespace: dict[str, object] = {"__name__": "api_guide"}
    try:
        for block in blocks:
            code = block.replace(DEMO_PATH, str(repo)).replace(DEMO_REGISTRY, prefix)
            exec(compile(code, str(GUIDE), "exec"), namespace)
    finally:
        remove_images(prefix)
    gc.collect()  # (an example that leaves a connection open fails here, not by chance later)
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("['demo-app', 'demo-base'")  # the demo's images
    assert any(line.startswith("demo-app ('demo-lib', 'demo-tools')") for line in printed)
    # Not published (a fresh registry), then published by the workflow example.
    spec = f"{prefix}/demo-base:mzbuild-T3J3QICBD7IKYFDL75RRQ4KM4SITBZUM"
    assert f"{{'{spec}': False}}" in printed, printed
    assert printed[-1] == "True", printed
    assert any(line.startswith("demo-base built True") for line in printed), printed
