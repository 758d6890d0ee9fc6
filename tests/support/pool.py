"""Extra real Docker engines (``scripts/engines``) and repositories of sleeping images.

The engines are Debian's ``dockerd`` started next to the main one, each with
its own data root, exec root, pid file, socket and bridge: ``e2`` on a unix
socket, ``e3`` over TCP with mutual TLS, ``e4`` (stopped by tests mid-build)
and an ``sshd`` whose sessions reach ``e2``.

They are one set per machine, and tests stop ``e4`` on purpose: a test session
holds them alone (an exclusive lock, taken at its first use and released when
it ends, its engines stopped), so a second copy of the suite running at the
same time waits for them rather than losing them mid-build.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import git
from tests.support.engine import BUSYBOX, _fail_or_skip

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "engines"

#: Engines this test session started (stopped again when it ends).
STARTED: set[str] = set()
#: The machine's lock on the extra engines, and how long a session waits for it.
LOCK = Path("/tmp/mzbuild-async-engines.lock")
LOCK_WAIT_SECONDS = 1800.0
_held: list[int] = []  # (the lock's descriptor while this session holds it)


def _hold_the_engines() -> None:
    """Take the machine's extra engines for this session (once; bounded wait)."""
    if _held:
        return
    fd = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    given_up = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > given_up:
                os.close(fd)
                _fail_or_skip(
                    f"another test session has held the extra engines ({LOCK}) for"
                    f" {LOCK_WAIT_SECONDS:g} s"
                )
            time.sleep(1.0)
    _held.append(fd)


def engines(*names: str, insecure: Sequence[str] = ()) -> dict[str, str]:
    """Start the named extra engines (idempotent); what ``scripts/engines env`` says.

    ``insecure``: plain-HTTP registries podman may use. Fails under CI=true
    (skips elsewhere) when they cannot be started.
    """
    if os.geteuid() != 0 or shutil.which("dockerd") is None:
        _fail_or_skip("extra engines need root and dockerd; run scripts/setup-system as root")
    _hold_the_engines()
    up = subprocess.run(
        [str(SCRIPT), "up", *names],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,  # (podman is installed on first use)
        env={**os.environ, "MZBUILD_ASYNC_INSECURE": " ".join(insecure)},
    )
    STARTED.update(
        line.split()[1] for line in up.stdout.splitlines() if line.startswith("started ")
    )
    if up.returncode != 0:
        _fail_or_skip(f"scripts/engines up {' '.join(names)} failed: {up.stderr.strip()}")
    env = subprocess.run(
        [str(SCRIPT), "env"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    return dict(line.split("=", 1) for line in env.splitlines() if "=" in line)


def stop_started() -> None:
    """Stop the engines this session started, and let the next session have them (the
    session's end)."""
    if STARTED:
        subprocess.run(
            [str(SCRIPT), "down", *sorted(STARTED)], capture_output=True, check=False, timeout=180
        )
        STARTED.clear()
    while _held:
        os.close(_held.pop())  # (closing releases the lock)


def stop_engine(name: str) -> None:
    """Stop one extra engine by its pid file (its running builds die)."""
    subprocess.run([str(SCRIPT), "down", name], capture_output=True, check=True, timeout=120)


def docker_on(host: str, *args: str) -> str:
    """``docker -H host ARGS`` (stdout)."""
    result = subprocess.run(
        ["docker", "-H", host, *args], capture_output=True, text=True, check=False, timeout=120
    )
    return result.stdout


#: The command that prints what every image below contributed.
SHOW = ("/bin/busybox", "sh", "-c", "cat /out/*.txt")


@dataclass(frozen=True)
class Sleepy:
    """One image of a generated repository: what it builds on and how long its RUN sleeps."""

    name: str
    parents: Sequence[str] = ()
    seconds: float = 1.0
    publish: bool = True
    #: Bytes of random data (new each repository) it copies in: a layer no engine has.
    blob: int = 0


def make_sleepy_repo(dest: Path, images: Sequence[Sleepy], token: str | None = None) -> Path:
    """A git repository of ``FROM scratch`` images whose builds are ``RUN sleep`` steps.

    Each image writes ``/out/NAME.txt`` and copies its parents' ``/out``, so
    ``cat /out/*`` in the top image (:data:`SHOW`) prints what every image
    below it contributed. ``token`` (random by default) makes every fingerprint new.
    """
    if not BUSYBOX.exists():
        _fail_or_skip("busybox-static is not installed; run scripts/setup-system")
    token = token or uuid.uuid4().hex[:12]
    for image in images:
        directory = dest / "images" / image.name
        directory.mkdir(parents=True)
        (directory / "mzbuild.yml").write_text(
            f"name: {image.name}\n" + ("" if image.publish else "publish: false\n")
        )
        lines: list[str] = []
        if not image.parents:
            shutil.copy2(BUSYBOX, directory / "busybox")
            (directory / "token").write_text(token + "\n")
            lines += ["FROM scratch", "COPY busybox /bin/busybox", "COPY token /token"]
        else:
            first, *rest = image.parents
            lines += [f"MZFROM {parent} AS {parent}" for parent in rest]
            lines.append(f"MZFROM {first}")
            lines += [f"COPY --from={parent} /out/ /out/" for parent in rest]
        if image.blob:
            (directory / "blob").write_bytes(os.urandom(image.blob))
            lines.append("COPY blob /blob")
        script = (
            f"mkdir -p /out && sleep {image.seconds:g} && echo {image.name} > /out/{image.name}.txt"
        )
        lines.append(f'RUN ["/bin/busybox", "sh", "-c", "{script}"]')
        (directory / "Dockerfile").write_text("\n".join(lines) + "\n")
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "sleepy")
    return dest


def engine_tables(repo: Path, *engines: tuple[str, str, int]) -> None:
    """``mzbuild-async.toml`` with one ``[[engine]]`` table per (url, name, slots)."""
    (repo / "mzbuild-async.toml").write_text(
        "\n".join(
            f'[[engine]]\nurl = "{url}"\nname = "{name}"\nslots = {slots}\n'
            for url, name, slots in engines
        )
    )


def when(
    process: subprocess.Popen[str], condition: Callable[[], bool], action: Callable[[], None]
) -> threading.Event:
    """Run ``action`` once ``condition()`` holds while ``process`` runs (polled from a
    thread, for two minutes at most); the event is set when it ran."""
    done = threading.Event()

    def watch() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            if condition():
                action()
                done.set()
                return
            time.sleep(0.2)

    threading.Thread(target=watch, daemon=True).start()
    return done


def running_commands(host: str) -> str:
    """The full commands running on engine ``host``: its containers (the classic
    builder's steps, ``run``) and the processes its own BuildKit runs for a build's
    steps, which are no containers (children of that dockerd, found through /proc)."""
    containers = docker_on(host, "ps", "--no-trunc", "--format", "{{.Command}}")
    return containers + "".join(f"{c}\n" for c in _build_steps(_dockerd_pid(host)))


def running_builds(host: str) -> set[str]:
    """One id per build running on engine ``host``: its running containers (the
    classic builder's steps) and, for its BuildKit, each sleepy image's RUN shell
    (the process whose command writes ``/out/``)."""
    containers = set(docker_on(host, "ps", "-q", "--filter", "status=running").split())
    steps = {f"buildkit:{c}" for c in _build_steps(_dockerd_pid(host)) if "/out/" in c}
    return containers | steps


def _dockerd_pid(host: str) -> int | None:
    """The pid of the dockerd serving ``host`` (the main one or one of ours)."""
    state = Path(os.environ.get("MZBUILD_ASYNC_ENGINES_DIR", "/tmp/mzbuild-async-engines"))
    if host in ("unix:///var/run/docker.sock", "unix:///run/docker.sock"):
        path = Path("/var/run/docker.pid")
    elif host.endswith(".sock") and "mzbuild-async-" in host:
        path = state / host.rsplit("mzbuild-async-", 1)[1].removesuffix(".sock") / "dockerd.pid"
    elif host.startswith("tcp://127.0.0.1:23763"):
        path = state / "e3" / "dockerd.pid"
    else:
        return None
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _build_steps(dockerd: int | None) -> list[str]:
    """Command lines of the processes descending from ``dockerd`` (BuildKit's steps)."""
    if dockerd is None:
        return []
    parents: dict[int, int] = {}
    commands: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            commands[int(entry.name)] = (
                (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            )
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z":
            parents[int(entry.name)] = int(fields[1])
    found = []
    for pid, command in commands.items():
        ancestor, hops = parents.get(pid), 0
        while ancestor not in (None, 0, 1, dockerd) and hops < 16:
            ancestor, hops = parents.get(ancestor), hops + 1
        program = Path(command.split(" ", 1)[0]).name
        if ancestor == dockerd and pid in parents and not program.startswith(_MACHINERY):
            found.append(command)
    return found


#: The engine's own processes (not a build's steps).
_MACHINERY = ("containerd", "runc", "docker-", "dockerd")
