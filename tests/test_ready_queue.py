"""The scheduler's ready queue (builds/ready): what each job waits for, the order
builds are handed out (longest critical path first, then first ready), and an
image lost with its engine making its dependents wait again."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mzbuild_async.builds.jobs import Action, Job, critical_paths
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


@settings(max_examples=100, deadline=None)
@given(data=st.data(), size=st.integers(1, 40))
def test_priorities_of_jobs_joined_in_batches_are_the_critical_paths_of_all(
    data: st.DataObject, size: int
) -> None:
    """Jobs join a run in batches (each waiting only for earlier ones): after every
    batch each job's priority is its critical path among all the jobs so far, as
    if computed from scratch."""
    jobs: dict[str, Job] = {}
    queue = ReadyQueue(jobs)
    made: list[Job] = []
    for i in range(size):
        builds = [j.name for j in made if j.action is not Action.NONE]
        after = data.draw(st.lists(st.sampled_from(builds), unique=True) if builds else st.just([]))
        action = data.draw(st.sampled_from([Action.BUILD, Action.BUILD, Action.PULL, Action.NONE]))
        made.append(
            Job(f"j{i}", action, after=tuple(after), estimate=float(data.draw(st.integers(0, 9))))
        )
    cuts = sorted(data.draw(st.sets(st.integers(1, size - 1))) if size > 1 else set())
    for start, end in zip([0, *cuts], [*cuts, size], strict=True):
        batch = made[start:end]
        batch = data.draw(st.permutations(batch))  # (a batch comes in any order)
        jobs.update((job.name, job) for job in batch)
        queue.add(batch)
        assert queue.priority == critical_paths(jobs)
