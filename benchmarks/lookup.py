"""Lookup latency: the whole ``check`` process, and the lookup engine across tiers.

Usage: python benchmarks/lookup.py [--runs 7] [--rtt 0.05] [--engine-tables]

**The command users run** (default): a Materialize-shaped repository (49
images, ``materialize_shaped.py``), 39 of its specs pushed to Debian's
``docker-registry``, which sits behind a TCP delay line (``tests/support/
delayline.py``: ``--rtt`` per round trip, half each way; it never looks
inside, so TLS goes through it end to end). For plain HTTP and for TLS (a
test CA through ``MZBUILD_ASYNC_CERTS_D``), each on first contact (no
``hosts.json``) and with the host remembered, it times in alternation, as
fresh processes: ``check --all --no-disk-cache`` and one ``HEAD`` at a time
on one keep-alive connection (``one_at_a_time.py``, the original's way),
and ``spec --all`` (the start-up part of the floor). It prints each median,
the ratio, the lookup phase ``check`` reports (the lookups after the
fingerprints) and the floors: start-up + TLS set-up (one round trip) +
ceil(N / concurrency) round trips for the process; for the lookup phase,
ceil(N / concurrency) round trips (the set-up overlaps the fingerprints).

**The lookup engine in-process** (``--engine-tables``): the earlier tables,
against the real registry with token auth behind the fault proxy adding
``--latency`` to every request. For N = 49 and N = 1000 tags, all present
and half absent, it times in one run:

(a) ``check``'s engine cold (no disk cache), (b) warm (disk cache on),
(c) the original mzbuild's way: one image at a time, a token then a HEAD,
(d) ``docker manifest inspect`` per image and (e) ``skopeo inspect`` per
image (N = 49 only, when installed), and prints wall time, requests sent,
429s received and the ratio to the floor: one token round trip plus
ceil(N / concurrency) HEAD round trips. Then two rate-limit runs: the
registry limited to R/s without telling us, and our configured rate within
the registry's (which must see zero 429s).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mzbuild_async.lookup.lookups import Lookups  # noqa: E402
from mzbuild_async.model.status import Status  # noqa: E402
from mzbuild_async.registry.answers import ACCEPT  # noqa: E402
from mzbuild_async.registry.auth import Challenge, parse_challenge  # noqa: E402
from mzbuild_async.registry.client import RegistryClient  # noqa: E402
from mzbuild_async.support.ratelimit import Limiters, Limits  # noqa: E402
from tests.support.registry import Registry, run_registry  # noqa: E402

CONCURRENCY = 32


@dataclass
class Row:
    """One measured way of answering N lookups."""

    label: str
    seconds: float
    requests: int
    throttled: int
    correct: bool


def push_all(registry: Registry, count: int, present: int) -> tuple[list[str], set[str]]:
    """``count`` ``repo:tag`` names, the first ``present`` pushed (the host is added later)."""
    specs, pushed = registry.push_many(count, present)
    strip = len(registry.host) + 1
    return [s[strip:] for s in specs], {s[strip:] for s in pushed}


async def engine_run(
    host: str, names: list[str], pushed: set[str], tiers: tuple[str, ...], cache: Path | None,
    limits: Limits | None = None, remembered: Mapping[str, Challenge | None] | None = None,
) -> Row:  # fmt: skip
    """Look every name up with the engine; count requests and 429s."""
    limiters = Limiters(default=limits) if limits else Limiters()
    client = RegistryClient(limiters=limiters, remembered=remembered or {})
    engine = Lookups.create(tiers=tiers, client=client, cache_dir=cache, owns_client=True)
    specs = [f"{host}/{n}" for n in names]
    started = time.perf_counter()
    try:
        answers = await engine.lookup_many(specs)
    finally:
        await engine.aclose()
    seconds = time.perf_counter() - started
    correct = all(
        answers[f"{host}/{n}"].status is (Status.PRESENT if n in pushed else Status.ABSENT)
        for n in names
    )
    LEARNED.update(client.challenges)
    return Row("", seconds, sum(client.requests.values()), sum(client.throttled.values()), correct)


#: Challenges learned by earlier runs in this process (what hosts.json would hold).
LEARNED: dict[str, Challenge | None] = {}


async def measured_floor(host: str, names: list[str], pushed: set[str]) -> Row:
    """The floor, measured: the token requests at once, then every HEAD, CONCURRENCY at a time.

    The same requests our engine sends, from a bare httpx client: what the
    registry, the proxy and httpx cost on this machine, with no engine around.
    """
    challenge = LEARNED[host]
    assert challenge is not None
    assert challenge.realm
    realm = challenge.realm
    service = challenge.params.get("service", "")
    tokens: dict[str, str] = {}
    correct = True
    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=60) as client:

        async def token(batch: list[str]) -> None:
            params: list[tuple[str, str | int | float | bool | None]] = [("service", service)]
            params += [("scope", f"repository:{n.rsplit(':', 1)[0]}:pull") for n in batch]
            value = (await client.get(realm, params=params)).json()["token"]
            tokens.update(dict.fromkeys(batch, value))

        async with anyio.create_task_group() as tg:
            for i in range(0, len(names), 50):
                tg.start_soon(token, names[i : i + 50])
        slots = anyio.Semaphore(CONCURRENCY)

        async def head(name: str) -> None:
            nonlocal correct
            repo, tag = name.rsplit(":", 1)
            async with slots:
                response = await client.head(
                    f"http://{host}/v2/{repo}/manifests/{tag}",
                    headers={"Accept": ACCEPT, "Authorization": f"Bearer {tokens[name]}"},
                )
            correct &= (response.status_code == 200) == (name in pushed)

        async with anyio.create_task_group() as tg:
            for name in names:
                tg.start_soon(head, name)
    requests = math.ceil(len(names) / 50) + len(names)
    return Row("", time.perf_counter() - started, requests, 0, correct)


async def original_run(host: str, names: list[str], pushed: set[str]) -> Row:
    """The original mzbuild's way: one image at a time, a token request then a HEAD."""
    requests = 0
    correct = True
    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=30) as client:
        challenge = parse_challenge(
            (await client.get(f"http://{host}/v2/")).headers.get("www-authenticate")
        )
        requests += 1
        assert challenge is not None
        assert challenge.realm
        for name in names:
            repo, tag = name.rsplit(":", 1)
            params = {
                "service": challenge.params.get("service", ""),
                "scope": f"repository:{repo}:pull",
            }
            token = (await client.get(challenge.realm, params=params)).json()["token"]
            response = await client.head(
                f"http://{host}/v2/{repo}/manifests/{tag}",
                headers={"Accept": ACCEPT, "Authorization": f"Bearer {token}"},
            )
            requests += 2
            correct &= (response.status_code == 200) == (name in pushed)
    return Row("", time.perf_counter() - started, requests, 0, correct)


def cli_run(
    command: Callable[[str], list[str]], host: str, names: list[str], pushed: set[str]
) -> Row:
    """One process per image (docker manifest inspect, skopeo inspect)."""
    correct = True
    started = time.perf_counter()
    for name in names:
        result = subprocess.run(
            command(f"{host}/{name}"), capture_output=True, text=True, check=False
        )
        correct &= (result.returncode == 0) == (name in pushed)
    return Row("", time.perf_counter() - started, 0, 0, correct)


def table(title: str, rows: list[Row], floor: float) -> None:
    print(f"\n{title}   floor {floor * 1000:.0f} ms")
    print(f"  {'':44} {'wall':>9} {'requests':>9} {'429s':>5} {'x floor':>8}  correct")
    for r in rows:
        print(
            f"  {r.label:44} {r.seconds * 1000:7.0f}ms {r.requests:>9} {r.throttled:>5}"
            f" {r.seconds / floor:7.2f}x  {'yes' if r.correct else 'NO'}"
        )


@contextmanager
def proxy_process(registry: Registry, latency: float, rate: float | None = None) -> Iterator[str]:
    """The fault proxy in a process of its own (so it does not share our core); its host."""
    challenge = httpx.get(f"{registry.url}/v2/").headers["www-authenticate"]
    realm = challenge.split('realm="', 1)[1].split('"', 1)[0]
    cmd = [
        sys.executable,
        "-m",
        "tests.support.faultproxy",
        registry.url,
        "--latency",
        str(latency),
    ]
    cmd += ["--token-realm", realm] + (["--rate", str(rate)] if rate else [])
    process = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        yield f"127.0.0.1:{process.stdout.readline().strip()}"
    finally:
        process.terminate()
        process.wait(timeout=10)


async def measure(rows: list[Row], label: str, run: Awaitable[Row]) -> None:
    """Await one measurement and keep it under ``label``."""
    row = await run
    row.label = label
    rows.append(row)


def docker_cmd(ref: str) -> list[str]:
    """`docker manifest inspect` of ``ref`` over plain HTTP."""
    return ["docker", "manifest", "inspect", "--insecure", ref]


def skopeo_cmd(ref: str) -> list[str]:
    """`skopeo inspect` of ``ref`` over plain HTTP."""
    return ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"]


async def scenario(
    registry: Registry, host: str, size: int, present: int, label: str, latency: float, tmp: Path
) -> None:
    """Every way of answering N lookups, printed as one table."""
    names, pushed = push_all(registry, size, present)
    floor = latency * (1 + math.ceil(size / CONCURRENCY))
    rows: list[Row] = []
    cold = ("memory", "registry", "manifest")
    warm = ("memory", "disk", "registry", "manifest")
    cache = tmp / f"cache-{uuid.uuid4().hex}"
    await measure(
        rows, "(a) check, cold, first contact", engine_run(host, names, pushed, cold, None)
    )
    await measure(
        rows,
        "(a) check, cold, auth challenge remembered",
        engine_run(host, names, pushed, cold, None, remembered=dict(LEARNED)),
    )
    await engine_run(host, names, pushed, warm, cache)  # fills the disk cache
    await measure(
        rows, "(b) check, warm (disk cache)", engine_run(host, names, pushed, warm, cache)
    )
    small = size <= 100
    if small:
        await measure(
            rows, "(c) original: one at a time, token + HEAD", original_run(host, names, pushed)
        )
        for tool, command in (("docker", docker_cmd), ("skopeo", skopeo_cmd)):
            if shutil.which(tool):
                await measure(
                    rows,
                    f"({'d' if tool == 'docker' else 'e'}) {' '.join(command('')[:3])} per image",
                    anyio.to_thread.run_sync(cli_run, command, host, names, pushed),
                )
    await measure(
        rows, "measured floor: tokens + HEADs, bare httpx", measured_floor(host, names, pushed)
    )
    table(f"N = {size}, {label} ({latency * 1000:.0f} ms per request)", rows, floor)
    ours, measured = rows[1].seconds, rows[-1].seconds
    print(f"  (a, remembered) vs the measured floor: {ours / measured:.2f}x; target: <= 1.25x")
    if small:
        print(f"  (a, remembered) is {rows[3].seconds / ours:.1f}x faster than (c); target: >= 20x")


async def bench(args: argparse.Namespace, registry: Registry, tmp: Path) -> None:
    """The latency tables, then the rate-limit runs."""
    with proxy_process(registry, args.latency) as host:
        for size in args.sizes:
            for label, present in (("all present", size), ("half absent", size // 2)):
                await scenario(registry, host, size, present, label, args.latency, tmp)
    # Rate limits: the registry allows R/s. First untold, then within our configured rate.
    rate, size = args.rate, args.rate_n
    with proxy_process(registry, 0.0, rate) as host:
        names, pushed = push_all(registry, size, size // 2)
        untold = await engine_run(host, names, pushed, ("memory", "registry"), None)
        untold.label = f"registry limited to {rate:g}/s, not told"
        names2, pushed2 = push_all(registry, size // 4, size // 8)
        await anyio.sleep(1.0)
        within = Limits(concurrency=CONCURRENCY, rate=rate * 0.8, burst=max(1, int(rate * 0.5)))
        told = await engine_run(host, names2, pushed2, ("memory", "registry"), None, within)
        told.label = f"configured {rate * 0.8:g}/s, within the registry's"
        print(f"\nrate limits (N = {size} and {size // 4}, no added latency)")
        for row, n in ((untold, size), (told, size // 4)):
            bound = n / rate
            print(
                f"  {row.label:44} {row.seconds:6.2f}s  N/R {bound:5.2f}s"
                f"  {row.seconds / bound:4.2f}x  429s {row.throttled:>4}"
                f"  correct {'yes' if row.correct else 'NO'}"
            )
        print("  targets: untold <= 1.3x N/R with every answer correct; within the limit: 0 429s")


#: Of the Materialize-shaped repository's 49 specs, how many are pushed.
PUBLISHED = 39
#: Of a synthetic repository's (``--images N``), the share pushed.
PUBLISHED_SHARE = 0.7


def synthetic(dest: Path, images: int) -> int:
    """A committed repository of ``images`` small images (every tenth ``MZFROM``s the one
    before it); returns how many."""
    for i in range(images):
        where = dest / "images" / f"img{i:05d}"
        where.mkdir(parents=True)
        (where / "mzbuild.yml").write_text(f"name: img{i:05d}\n")
        parent = f"MZFROM img{i - 1:05d}" if i % 10 == 9 else "FROM scratch"
        (where / "Dockerfile").write_text(f"{parent}\nCOPY data.txt /\n")
        (where / "data.txt").write_text(f"image {i}\n")
    for args in (("init", "-q", "-b", "main"), ("add", "-A"), ("commit", "-q", "-m", "images")):
        subprocess.run(
            ["git", *args],
            cwd=dest,
            check=True,
            env={**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b",
                 "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@b"},
        )  # fmt: skip
    return images


@dataclass
class ProcessRow:
    """One registry set-up and contact kind, timed as whole processes."""

    label: str
    ours: list[float]
    phase: list[float]
    one_at_a_time: list[float]
    tls: bool
    #: The same HEADs, CONCURRENCY at a time, from a bare httpx client (a process).
    bare: list[float] = field(default_factory=list)


def _run(cmd: list[str], env: Mapping[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, env=dict(env))
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(cmd[:6])} ... exited {result.returncode}: {result.stderr[-1500:]}")
    return seconds, result.stdout


def _phase(out: str) -> float:
    """The lookup phase ``check`` reports: ``... in X s (lookups Y s after the fingerprints)``."""
    line = next(line for line in out.splitlines() if " images: " in line)
    return float(line.split("(lookups ", 1)[1].split()[0])


def process_tables(args: argparse.Namespace, tmp: Path) -> None:
    """The whole ``check`` process on plain HTTP and TLS, first contact and remembered."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from materialize_shaped import generate

    from tests.support.delayline import delay_line_thread
    from tests.support.tls import make_tls

    repo = tmp / "repo"
    if args.images == 49:
        images, published = generate(repo, 0).images, PUBLISHED
    else:
        images = synthetic(repo, args.images)
        published = round(images * PUBLISHED_SHARE)
    pki = make_tls(tmp / "pki")
    cache = tmp / "cache"
    base_env = {**os.environ, "MZBUILD_ASYNC_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    # As installed packages are: imports come from cached bytecode, not compiled each run.
    base_env.pop("PYTHONDONTWRITEBYTECODE", None)
    spec_cmd = [sys.executable, "-m", "mzbuild_async", "spec", "--all", "--json", "--repo"]
    rows: list[ProcessRow] = []
    startup: list[float] = []
    for tls in [s == "tls" for s in args.schemes.split(",")]:
        with (
            run_registry(tmp / f"reg-{tls}", "none", tls=pki if tls else None) as registry,
            delay_line_thread(int(registry.host.rsplit(":", 1)[1]), args.rtt / 2) as line,
        ):
            env = dict(base_env)
            if tls:
                certs = tmp / "certs.d" / line.host
                certs.mkdir(parents=True, exist_ok=True)
                shutil.copy(pki.ca, certs / "ca.crt")
                env["MZBUILD_ASYNC_CERTS_D"] = str(tmp / "certs.d")
            registry_flag = ["--image-registry", f"{line.host}/bench"]
            time.sleep(2.1)  # files this new are not kept by the digest cache
            _, out = _run([*spec_cmd, str(repo), *registry_flag], env)
            specs = sorted(json.loads(out).values())
            for spec in specs[:published]:
                path, _, tag = spec.split("/", 1)[1].rpartition(":")
                registry.push(path, tag)
            check = [sys.executable, "-m", "mzbuild_async", "check", "--all", "--no-disk-cache"]
            check += ["--repo", str(repo), *registry_flag]
            one = [sys.executable, str(ROOT / "benchmarks" / "one_at_a_time.py")]
            one += [*(["--ca", str(pki.ca)] if tls else []), *specs]
            scheme = "TLS (HTTP/2)" if tls else "plain HTTP"
            for kind in args.contacts.split(","):
                contact = {"first": "first contact", "remembered": "host remembered"}[kind]
                row = ProcessRow(f"{scheme}, {contact}", [], [], [], tls)
                for _ in range(args.runs):
                    if contact == "first contact":
                        (cache / "hosts.json").unlink(missing_ok=True)
                    seconds, out = _run(check, env)
                    row.ours.append(seconds)
                    row.phase.append(_phase(out))
                    row.one_at_a_time.append(_run(one, env)[0])
                    row.bare.append(
                        _run([*one[:2], "--concurrency", str(CONCURRENCY), *one[2:]], env)[0]
                    )
                    startup.append(_run([*spec_cmd, str(repo), *registry_flag], env)[0])
                rows.append(row)
    _print_process(rows, startup, args, images, published)


def _print_process(
    rows: list[ProcessRow],
    startup: list[float],
    args: argparse.Namespace,
    images: int,
    published: int,
) -> None:
    med = statistics.median
    rtt = args.rtt
    trips = math.ceil(images / CONCURRENCY)
    print(
        f"check --all --no-disk-cache, whole process: {images} images, {published} published,"
        f" {rtt * 1000:.0f} ms round trip (delay line), {args.runs} alternating runs, medians"
    )
    print(f"start-up (spec --all, whole process): {med(startup) * 1000:.0f} ms")
    head = f"{'':32}{'one at a time':>14}{'ours':>8}{'ratio':>7}"
    head += f"{'floor':>8}{'x':>6}{'bare httpx':>12}{'lookups':>9}{'floor':>7}{'x':>6}"
    print(head)
    for row in rows:
        setup = rtt if row.tls else 0.0
        phase_floor = trips * rtt  # (the set-up overlaps the fingerprints)
        floor = med(startup) + setup + phase_floor
        ours, one, phase = med(row.ours), med(row.one_at_a_time), med(row.phase)
        print(
            f"{row.label:32}{one:12.2f} s{ours:6.2f} s{one / ours:6.1f}x"
            f"{floor:6.2f} s{ours / floor:5.2f}x{med(row.bare):10.2f} s"
            f"{phase:7.2f} s{phase_floor:5.2f} s{phase / phase_floor:5.2f}x"
        )
    print(
        "floor: start-up + TLS set-up + ceil(N / concurrency) round trips; bare httpx:"
        f" the same HEADs {CONCURRENCY} at a time from a bare httpx process (no fingerprints)"
    )
    print("targets: ours >= 4x one at a time; the lookup phase <= 1.5x its floor")


def main() -> int:
    """Run the process tables (or, with --engine-tables, the engine's) and print them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--rtt", type=float, default=0.05)
    parser.add_argument("--engine-tables", action="store_true")
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--sizes", default="49,1000")
    parser.add_argument(
        "--images", type=int, default=49, help="49: Materialize-shaped; else N synthetic images"
    )
    parser.add_argument("--schemes", default="plain,tls", help="plain, tls or both")
    parser.add_argument("--contacts", default="first,remembered", help="first, remembered")
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--rate-n", type=int, default=500)
    args = parser.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        if not args.engine_tables:
            process_tables(args, Path(tmp))
            return 0
        with run_registry(Path(tmp) / "registry", "token") as registry:
            anyio.run(bench, args, registry, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
