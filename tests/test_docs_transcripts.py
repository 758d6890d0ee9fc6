"""The docs' console transcripts run as written: every ``console`` block of the README
and the guides is either run here, against a fresh copy of the demo and a real
registry and engine, or listed with the reason it is not (and the test that covers
what it shows instead).

A block runs as one shell session in the demo repository (``mzbuild-async`` is this
checkout's), with the demo's path and its registry (``127.0.0.1:5577``) put where
this test has them. Each command must end with the status the table gives (0 unless
said), and the lines the block shows under it must appear in its output, in order,
once fingerprints, digests, commit ids, numbers and spacing are set aside
(``...`` in a block stands for lines not shown)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.registry import PASSWORD, USER, Registry

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PAGES += sorted((ROOT / "docs" / "guide").glob("*.md"))
DEMO_PATH, DEMO_HOST = "/tmp/mzbuild-async-demo/repository", "127.0.0.1:5577"
#: The mirror registry the examples name (here: the registry with a password).
MIRROR_HOST = "127.0.0.1:5578"


@dataclass(frozen=True)
class Block:
    """One console block: its page, its commands and what each shows."""

    page: str
    #: (command, the lines shown under it), in order.
    commands: tuple[tuple[str, tuple[str, ...]], ...]

    @property
    def key(self) -> tuple[str, str]:
        """The page and the block's first command: how the tables name it."""
        return self.page, self.commands[0][0].splitlines()[0]


def blocks() -> list[Block]:
    """Every console block of the README and the docs."""
    found = []
    for page in PAGES:
        for text in re.findall(r"```console\n(.*?)```", page.read_text(), re.DOTALL):
            commands: list[tuple[str, list[str]]] = []
            continued = False
            for line in text.splitlines():
                if continued:
                    commands[-1] = (commands[-1][0] + "\n" + line, commands[-1][1])
                elif line.startswith("$ "):
                    commands.append((line[2:], []))
                elif commands:
                    commands[-1][1].append(line)
                # (a command goes on after a backslash; output lines do not)
                continued = (continued or line.startswith("$ ")) and line.endswith("\\")
            found.append(
                Block(str(page.relative_to(ROOT)), tuple((c, tuple(o)) for c, o in commands))
            )
    return found


@dataclass(frozen=True)
class Run:
    """How a block is run: files it needs, shell lines before it and between its
    commands (by the index of the command they precede), none compared; each
    command's exit status."""

    #: Files written into the demo (and committed) first, by path.
    files: dict[str, str] = field(default_factory=dict)
    before: tuple[str, ...] = ()
    between: dict[int, tuple[str, ...]] = field(default_factory=dict)
    statuses: dict[int, int] = field(default_factory=dict)


#: The image the README's BuildKit example adds to the demo.
FETCH = """MZFROM demo-base
# The package cache survives between builds; the token is in no layer.
RUN --mount=type=cache,target=/var/cache/pkgs \\
    --mount=type=secret,id=npm \\
    test -s /run/secrets/npm && echo "fetched with a token" > /fetched
"""
#: The steps file of the README's ``affected`` example.
STEPS = """steps:
  - {key: app-tests, command: bin/test app, images: [demo-app]}
  - {key: hello-tests, command: bin/test hello, images: [demo-hello]}
"""
ENSURE_ALL = "mzbuild-async ensure --all -q"
COMMIT = "git add -A && git commit -qm change"

#: The blocks run here, by (page, first command).
RUN: dict[tuple[str, str], Run] = {
    ("README.md", "cd /tmp/mzbuild-async-demo/repository && R=127.0.0.1:5577/demo"): Run(
        before=(ENSURE_ALL,)
    ),
    ("README.md", "cat images/fetch/Dockerfile"): Run(
        files={
            "images/fetch/mzbuild.yml": "name: demo-fetch\n",
            "images/fetch/Dockerfile": FETCH,
        },
        before=(
            "R=127.0.0.1:5577/demo",
            "mzbuild-async ensure demo-base -q",
            'echo "a token" > "$HOME/.npm-token"',
        ),
    ),
    ("README.md", "cat mzbuild-async.toml"): Run(
        files={"mzbuild-async.toml": '[[publish]]\nregistry = "127.0.0.1:5578/rel2"\n'}
    ),
    (
        "README.md",
        "mzbuild-async keygen --out sign.pem          # sign.pem (mode 0600) and sign.pub.pem",
    ): Run(),
    ("README.md", "mzbuild-async affected --base HEAD~1 --head HEAD"): Run(
        files={"steps.yml": STEPS},
        before=('echo "lib 2" > images/lib/lib.txt', COMMIT),
    ),
    ("docs/guide/building.md", "mzbuild-async ensure demo-app"): Run(
        before=(ENSURE_ALL, 'echo "lib 2" > images/lib/lib.txt'),
        between={1: ('echo "RUN exit 3" >> images/tools/Dockerfile',)},
        statuses={1: 1},
    ),
    ("docs/guide/building.md", "mzbuild-async ensure demo-base -q --metadata-file m.json"): Run(
        files={
            "mzbuild-async.toml": '[defaults]\nimage-registry = "127.0.0.1:5577/rel"\n'
            '[[publish]]\nregistry = "127.0.0.1:5578/rel"\n'
        },
        before=("mzbuild-async ensure demo-base -q",),
    ),
    ("docs/guide/building.md", "mzbuild-async promote v1.2.3 demo-base demo-tools"): Run(
        before=("mzbuild-async ensure demo-tools -q", "mzbuild-async promote latest demo-base"),
        statuses={2: 1, 5: 1},
    ),
    (
        "docs/guide/ci.md",
        "mzbuild-async pipeline --all --image-registry 127.0.0.1:5577/readme-pipe \\",
    ): Run(),
    ("docs/guide/supply-chain.md", "mzbuild-async keygen --out sign.pem"): Run(),
    (
        "docs/guide/reports.md",
        "mzbuild-async ensure demo-tools --log-format json -v 2>&1 >/dev/null"
        """ | grep '"event": "build'""",
    ): Run(before=("mzbuild-async ensure demo-base -q",)),
    ("docs/guide/reports.md", "mzbuild-async ensure demo-app -q"): Run(
        before=("mzbuild-async ensure demo-lib -q",)
    ),
    ("docs/guide/reports.md", "mzbuild-async plan demo-app"): Run(
        before=("mzbuild-async ensure demo-tools -q",)
    ),
    ("docs/guide/reports.md", "mzbuild-async explain demo-app"): Run(
        before=(
            "echo extra > images/app/extra.txt",
            "chmod 644 images/app/app.sh",
            "echo changed >> images/tools/tools.txt",
            COMMIT,
        )
    ),
}

#: The blocks not run here, and why (with what covers them).
NOT_RUN: dict[tuple[str, str], str] = {
    ("docs/getting-started.md", "scripts/demo"): "scripts/demo is what .ci/run runs first",
    ("docs/guide/command-line.md", "python -m mzbuild_async list"): (
        "the Materialize tree (tests/test_vectors.py checks its specs)"
    ),
    (
        "docs/guide/lookups.md",
        "python -m mzbuild_async check --all --image-registry 127.0.0.1:5577/acme    # run 1",
    ): (
        "the fingerprint tests' tree (tests/test_check_cli.py; tests/test_lookup_floor.py"
        " counts the requests of a second run)"
    ),
    (
        "docs/guide/engines.md",
        "HOME=/tmp/mzbuild-async-engines/ssh-home mzbuild-async ensure --all --jobs 2 \\",
    ): "a pool over SSH engines (tests/test_engine_pool.py)",
    (
        "docs/guide/supply-chain.md",
        "cosign verify-attestation --key sign.pub.pem --insecure-ignore-tlog \\",
    ): "cosign is not installed here (tests/test_attest.py checks the layout as cosign does)",
    ("README.md", "mzbuild-async promote v1.2.3 --all --arch x86_64 --arch aarch64 --mainline"): (
        "arm64 images: no arm64 machine or emulator here (tests/test_promote.py publishes"
        " synthetic arm64 manifests and checks the index)"
    ),
    ("README.md", "mzbuild-async gc --keep-branch main --keep-last 2 --keep-younger 0s"): (
        "a registry holding older commits' and branches' images (tests/test_gc.py)"
    ),
    (
        "docs/guide/retention.md",
        "mzbuild-async gc --keep-branch main --keep-last 2 --keep-younger 0s",
    ): ("a registry holding older commits' and branches' images (tests/test_gc.py)"),
}


def test_every_console_block_is_run_or_says_why_not() -> None:
    keys = [b.key for b in blocks()]
    assert len(keys) == len(set(keys)), "two blocks start alike: tell them apart"
    unknown = [k for k in keys if k not in RUN and k not in NOT_RUN]
    assert not unknown, f"run these blocks in RUN, or say in NOT_RUN why not: {unknown}"
    assert not (set(RUN) | set(NOT_RUN)) - set(keys), "a table names a block that is gone"


_NOISE = [
    (re.compile(r"^slowest: .*"), "slowest: S"),  # (which steps were slowest varies)
    (re.compile(r"[A-Z2-7]{32}"), "F"),
    (re.compile(r"sha256:(?:[0-9a-f]{12,64}|\.\.\.)"), "D"),
    (re.compile(r"\b[0-9a-f]{12,64}\b"), "C"),
    (re.compile(r"\d+(\.\d+)?"), "N"),
]


def normal(line: str) -> str:
    """A line with what differs from run to run set aside."""
    for pattern, word in _NOISE:
        line = pattern.sub(word, line)
    return " ".join(line.split())


#: A progress line (``[   1.2s] demo-lib: build done``): concurrent work's lines may
#: come in another order, so these are looked for anywhere.
_PROGRESS = re.compile(r"^\[\s*[\d.]+s\] ")


def shows(expected: tuple[str, ...], printed: list[str]) -> str | None:
    """The first line of ``expected`` not in ``printed`` (in order, but for progress
    lines: anywhere), or None."""
    got = [normal(line) for line in printed]
    for line in expected:
        if _PROGRESS.match(line) and normal(line) not in got:
            return normal(line)
    at = 0
    for line in expected:
        if line.strip() == "..." or _PROGRESS.match(line):
            continue
        wanted = normal(line)
        while at < len(got) and got[at] != wanted:
            at += 1
        if at == len(got):
            return wanted
        at += 1
    return None


def test_shown_lines_must_come_in_order_but_progress_anywhere() -> None:
    printed = ["[  0.1s] b: done", "[  0.2s] a: done", "IMAGE x", "ok: 2 images in 1.5 s"]
    assert (
        shows(("[  0.3s] a: done", "[  0.1s] b: done", "...", "ok: 3 images in 0.2 s"), printed)
        is None
    )
    assert shows(("ok: N images in N s", "IMAGE x"), printed) == "IMAGE x"
    assert shows(("[  0.1s] c: done",), printed) == "[ Ns] c: done"
    assert shows(("IMAGE y",), printed) == "IMAGE y"


def _put(text: str, places: dict[str, str]) -> str:
    for name, place in places.items():
        text = text.replace(name, place)
    return text


def _script(block: Block, run: Run, repo: Path, places: dict[str, str]) -> str:
    lines = [
        f'mzbuild-async() {{ "{sys.executable}" -m mzbuild_async "$@"; }}',
        f"cd {repo}",
        *(
            f"{{ {_put(line, places)}; }} || {{ echo '@@SETUP failed'; exit 1; }}"
            for line in run.before
        ),
    ]
    for index, (command, _) in enumerate(block.commands):
        lines += [_put(line, places) for line in run.between.get(index, ())]
        lines += [f"echo @@COMMAND {index}", "{", _put(command, places), "} 2>&1"]
        lines.append("echo @@STATUS $?")
    return "\n".join(lines) + "\n"


@pytest.mark.real
@pytest.mark.slow
@pytest.mark.parametrize("key", sorted(RUN), ids=lambda k: f"{k[0]}:{k[1][:40]}")
def test_the_block_runs_as_written(
    key: tuple[str, str], tmp_path: Path, registries: dict[str, Registry]
) -> None:
    from tests.support.demo import make_demo
    from tests.support.engine import remove_images

    (block,) = [b for b in blocks() if b.key == key]
    run = RUN[key]
    repo = make_demo(tmp_path / "repository")
    plain, locked = registries["none"], registries["htpasswd"]
    unique = f"t{uuid.uuid4().hex[:8]}"
    places = {
        DEMO_PATH: str(repo),
        DEMO_HOST: f"{plain.host}/{unique}",
        MIRROR_HOST: f"{locked.host}/{unique}",
    }
    settings = repo / "mzbuild-async.toml"
    settings.write_text(_put(settings.read_text(), places))
    for path, text in run.files.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(_put(text, places))
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", "this test's files"], cwd=repo, check=True)
    home = tmp_path / "home"
    home.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HOME": str(home),  # (cargo's toolchain stays where it is)
        "RUSTUP_HOME": os.environ.get("RUSTUP_HOME", str(Path.home() / ".rustup")),
        "CARGO_HOME": os.environ.get("CARGO_HOME", str(Path.home() / ".cargo")),
        "MZBUILD_ASYNC_CACHE_DIR": str(tmp_path / "cache"),
        "MZBUILD_ASYNC_REGISTRY_USERNAME": USER,
        "MZBUILD_ASYNC_REGISTRY_PASSWORD": PASSWORD,
        "TMPDIR": str(tmp_path),
        **{f"GIT_{who}_{what}": value for who in ("AUTHOR", "COMMITTER")
           for what, value in (("NAME", "docs"), ("EMAIL", "docs@example.test"))},
    }  # fmt: skip
    try:
        done = subprocess.run(
            ["bash", "-c", _script(block, run, repo, places)],
            capture_output=True, text=True, timeout=600, check=False, env=env,
        )  # fmt: skip
    finally:
        remove_images(places[DEMO_HOST])
    assert "@@SETUP" not in done.stdout, done.stdout + done.stderr
    parts = re.split(r"^@@COMMAND (\d+)\n", done.stdout, flags=re.MULTILINE)[1:]
    outputs = dict(zip(parts[::2], parts[1::2], strict=True))
    back = {place: name for name, place in places.items()}
    for index, (command, expected) in enumerate(block.commands):
        output = outputs.get(str(index), "")
        printed, _, status = output.rpartition("@@STATUS ")
        where = f"{key[0]}: $ {command.splitlines()[0]}"
        assert status.strip() == str(run.statuses.get(index, 0)), f"{where}\n{output}"
        printed = _put(printed, back)
        missing = shows(expected, printed.splitlines())
        assert missing is None, f"{where}: the output lacks\n  {missing}\nit was:\n{printed}"
