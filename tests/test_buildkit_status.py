"""BuildKit's status stream (engine/buildkit): recorded streams of the real engine
decoded into steps, lines, the cached steps and the failing step; the wire reader's
refusals; BuildKit's step names mapped to Dockerfile lines."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from mzbuild_async.engine.buildkit import (
    Progress,
    Status,
    Vertex,
    _Step,
    decode_status,
    dockerfile_step,
)
from mzbuild_async.model.dockerfile import buildkit_step_line
from mzbuild_async.support.protowire import fields

RECORDED = Path(__file__).parent / "buildkit"


def replay(name: str) -> tuple[Progress, list[str], list[dict[str, object]]]:
    """Feed a recorded stream; the progress, its lines and the engine's other items."""
    progress, lines, others = Progress(), [], []
    for raw in (RECORDED / f"{name}.jsonl").read_text().splitlines():
        item = json.loads(raw)
        if item.get("id") == "moby.buildkit.trace":
            lines += progress.feed(decode_status(base64.b64decode(item["aux"])))
        else:
            others.append(item)
    return progress, lines, others


def test_a_build_is_its_steps_and_their_output() -> None:
    progress, lines, others = replay("ok")
    names = [s.vertex.name for s in progress.steps.values()]
    assert names[2:4] == [
        "[1/2] COPY busybox /bin/busybox",
        '[2/2] RUN ["/bin/busybox", "sh", "-c", "echo hello-from-run; echo second line"]',
    ]
    run = next(s for s in progress.steps.values() if s.vertex.name.startswith("[2/2]"))
    assert [line.split(" ", 2)[2] for line in lines if line.startswith(f"#{run.number} 0.")] == [
        "hello-from-run",
        "second line",
    ]
    assert f"#{run.number} DONE" in "\n".join(lines)
    assert all(s.vertex.completed is not None for s in progress.steps.values())
    assert progress.failed() is None
    assert {"id": "moby.image.id"}.items() <= others[0].items()


def test_cached_steps_are_marked_cached() -> None:
    progress, lines, _ = replay("ok-cached")
    assert set(progress.cached()) >= {
        "copy /context /",
        "[1/2] COPY busybox /bin/busybox",
        '[2/2] RUN ["/bin/busybox", "sh", "-c", "echo hello-from-run; echo second line"]',
    }
    assert sum(line.endswith(" CACHED") for line in lines) == 3
    assert not [x for x in lines if re.match(r"#\d+ \d+\.\d{3} ", x)]  # (nothing ran)


def test_a_failed_run_names_its_step_its_line_and_its_last_output() -> None:
    progress, lines, others = replay("fail")
    failed = progress.failed()
    assert failed is not None
    assert failed.vertex.error.endswith("exit code: 3")
    assert failed.tail == ["about to fail", "oops"]  # stdout and stderr, in order
    assert lines[-1].startswith(f"#{failed.number} ERROR: executor failed running")
    stage, n, of, instruction = dockerfile_step(failed.vertex.name) or ("?", 0, 0, "")
    assert (stage, n, of) == ("", 2, 2)
    assert instruction.startswith("RUN ")
    dockerfile = (RECORDED / "fail.Dockerfile").read_bytes()
    assert buildkit_step_line(dockerfile, stage, n) == 3
    assert "errorDetail" in others[-1]


def test_a_failure_reported_before_its_step_names_the_step_that_was_running() -> None:
    """Under load the engine's error can come before (or without) the status that
    marks the step failed: the step that had started and not finished is named."""
    progress = Progress()
    for raw in (RECORDED / "fail.jsonl").read_text().splitlines():
        item = json.loads(raw)
        if item.get("id") != "moby.buildkit.trace":
            continue
        status = decode_status(base64.b64decode(item["aux"]))
        if any(v.error for v in status.vertexes):
            break  # (the status marking the failure never came)
        progress.feed(status)
    failed = progress.failed()
    assert failed is not None
    assert not failed.vertex.error
    assert failed.vertex.name.startswith("[2/2] RUN ")
    assert failed.tail == ["about to fail", "oops"]
    assert Progress().failed() is None


def test_an_early_error_names_the_step_running_its_command() -> None:
    """The error names the command (``[/bin/sh -c exit 3]``): the unfinished step
    whose name ends with it, though the engine had not yet said it started."""
    progress = Progress()
    progress.feed(
        Status(
            (
                Vertex("a", "[2/4] COPY tools.txt /etc/tools.txt", started=1.0),
                Vertex("b", '[3/4] RUN echo "ready" > /etc/ready', started=2.0),
                Vertex("c", "[4/4] RUN exit 3"),
            )
        )
    )
    error = "executor failed running [/bin/sh -c exit 3]: exit code: 3"
    assert _digest(progress.failed(error)) == "c"
    # Without the command's name, or naming none of them: the step started last.
    assert _digest(progress.failed()) == "b"
    assert _digest(progress.failed("executor failed running [/bin/sh -c nope]: x")) == "b"


def _digest(step: _Step | None) -> str:
    assert step is not None
    return step.vertex.digest


def test_independent_stages_build_at_once() -> None:
    """The two stages' RUNs overlap in time and their output interleaves."""
    progress, lines, _ = replay("stages")
    runs = {
        s.vertex.name.split()[0].lstrip("["): s
        for s in progress.steps.values()
        if " RUN " in f" {s.vertex.name.split('] ', 1)[-1]}"
    }
    one, two = runs["one"], runs["two"]
    assert one.vertex.started is not None
    assert two.vertex.started is not None
    assert one.vertex.completed is not None
    assert two.vertex.completed is not None
    assert one.vertex.started < two.vertex.completed
    assert two.vertex.started < one.vertex.completed
    order = [
        line.rsplit(" ", 1)[-1]
        for line in lines
        if "-" in line and line.split()[-1][:4] in ("one-", "two-")
    ]
    assert order[:2] in (["one-1", "two-1"], ["two-1", "one-1"])
    assert sorted(order) == ["one-1", "one-2", "one-3", "two-1", "two-2", "two-3"]
    dockerfile = (RECORDED / "stages.Dockerfile").read_bytes()
    assert buildkit_step_line(dockerfile, "two", 2) == 7
    assert buildkit_step_line(dockerfile, "stage-2", 2) == 11
    assert buildkit_step_line(dockerfile, "one", 1) == 2
    assert buildkit_step_line(dockerfile, "nowhere", 1) is None


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\x0a\x05abc", id="a field past the end"),
        pytest.param(b"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", id="a long varint"),
        pytest.param(b"\x0b", id="a group"),
        pytest.param(b"\x00\x01", id="field 0"),
        pytest.param(b"\x0d\x01\x02", id="a fixed32 past the end"),
    ],
)
def test_malformed_messages_are_value_errors(data: bytes) -> None:
    with pytest.raises(ValueError, match=r"."):
        list(fields(data))
    with pytest.raises(ValueError, match=r"."):
        decode_status(b"\x0a" + bytes([len(data)]) + data)


def test_a_stage_on_an_image_counts_its_from_as_step_one() -> None:
    """``FROM scratch`` is no step; ``FROM image`` (an ``MZFROM`` too) is step 1."""
    dockerfile = b"MZFROM base\nCOPY a /a\n\n# a comment\nRUN false\n"
    assert buildkit_step_line(dockerfile, "", 3) == 5
    assert buildkit_step_line(dockerfile, "", 1) == 1
    assert buildkit_step_line(b"FROM scratch\nCOPY a /a\nRUN false\n", "", 2) == 3


def test_secret_mounts_are_found_on_continuation_lines_too() -> None:
    """A ``--mount`` on the second line of a ``RUN`` is that instruction's (and its line
    is the instruction's first); an id defaults to the target's last component."""
    from mzbuild_async.model.dockerfile import secret_mounts

    dockerfile = (
        b"FROM scratch\n"
        b"RUN --mount=type=cache,target=/c \\\n"
        b"    --mount=type=secret,id=npm \\\n"
        b"    make\n"
        b"RUN --mount=type=secret,target=/run/secrets/pip,required=false pip install\n"
    )
    assert secret_mounts(dockerfile) == [(2, "npm", True), (5, "pip", False)]
