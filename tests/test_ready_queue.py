"""The scheduler's ready queue (builds/ready): what each job waits for, the order
builds are handed out (longest critical path first, then first ready), and an
image lost with its engine making its dependents wait again."""

from __future__ import annotations

from mzbuild_async.builds.jobs import Action, Job
from mzbuild_async.builds.ready import ReadyQueue


def _queue() -> ReadyQueue:
    jobs = {
        "base": Job("base", Action.BUILD, estimate=1.0),
        "lib": Job("lib", Action.BUILD, after=("base",), estimate=5.0),
        "app": Job("app", Action.BUILD, after=("base", "lib"), estimate=1.0),
        "tool": Job("tool", Action.BUILD, after=("base",), estimate=1.0),
    }
    queue = ReadyQueue(jobs)
    queue.add(list(jobs.values()))
    return queue


def test_dependents_wait_until_what_they_need_arrives() -> None:
    queue = _queue()
    assert queue.waiting == {"base": 0, "lib": 1, "app": 2, "tool": 1}
    assert sorted(queue.arrived("base") or []) == ["lib", "tool"]
    assert queue.arrived("base") is None  # (there already: nothing changes)
    assert queue.arrived("lib") == ["app"]


def test_the_longest_critical_path_goes_first_and_a_job_is_queued_once() -> None:
    queue = _queue()
    queue.arrived("base")
    for name in ("tool", "lib", "tool"):
        queue.push(name)
    first, second = queue.pop(), queue.pop()
    assert (first[2], second[2]) == ("lib", "tool")  # lib (5 s + app) before tool
    assert not queue
    queue.put_back([second])
    assert queue.pop()[2] == "tool"
    queue.drop("tool")
    queue.push("tool")  # (dropped: it may be queued again)
    assert queue.pop()[2] == "tool"


def test_an_image_gone_again_makes_its_dependents_wait_for_it() -> None:
    queue = _queue()
    for name in ("base", "lib"):
        queue.arrived(name)
    queue.gone(["lib"], done={"tool"})
    assert "lib" not in queue.there
    assert queue.waiting["app"] == 1  # waits for lib again
    assert queue.waiting["lib"] == 0  # base is still there: lib may be built again
    assert queue.arrived("lib") == ["app"]
