"""A self-contained HTML Gantt chart of a run (``--timeline FILE.html``).

One row per track (the run's phases, each lookup tier, cargo, each image),
one bar per step, and under an image built with BuildKit the steps inside its
build (as many rows as its stages ran at once). Bars are positioned in
percent of the run's length, so the page needs no script, stylesheet or
font from anywhere else. A few lines of inline script only record each
bar's rendered width (``data-px``), which the tests read back from a
headless browser.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..workflow.intervals import BUILD_STEP, Interval, pack_rows

COLORS = {
    "run": "#c1c7d0",
    "fingerprint": "#8e8cd8",
    "lookup": "#9fb3c8",
    "cargo": "#d9822b",
    "pull": "#4c9aff",
    "build": "#36b37e",
    "push": "#6554c0",
    "transfer": "#00b8d9",
    "send": "#8777d9",
    BUILD_STEP: "#79d2a6",
}
FAILED = "#de350b"
#: A build step BuildKit took from its cache.
CACHED = "#dfe1e6"

STYLE = """
body{font:13px/1.4 system-ui,sans-serif;margin:16px;color:#172b4d}
h1{font-size:18px;margin:0 0 4px}
.meta{color:#5e6c84;margin-bottom:12px}
.chart{display:grid;grid-template-columns:max-content 1fr;gap:2px 8px;align-items:center}
.label{white-space:nowrap;text-align:right;font-family:monospace}
.lane{position:relative;height:18px;background:#f4f5f7}
.group{grid-column:1/3;font-weight:600;margin-top:8px;border-bottom:1px solid #c1c7d0}
.bar{position:absolute;top:2px;height:14px;border-radius:2px;min-width:1px}
.bar.failed{background:#de350b !important}
.bar.mark{width:2px !important;top:0;height:18px;background:#172b4d !important}
.axis{position:relative;height:16px;color:#5e6c84;font-size:11px}
.tick{position:absolute;transform:translateX(-50%)}
.legend span{display:inline-block;margin-right:12px}
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
table{border-collapse:collapse;margin-top:16px}
td,th{padding:2px 8px;text-align:left;border-bottom:1px solid #ebecf0}
"""

SCRIPT = """
document.querySelectorAll('.bar').forEach(function (b) {
  b.dataset.px = String(Math.round(b.getBoundingClientRect().width * 100) / 100);
});
document.body.dataset.bars = String(document.querySelectorAll('.bar').length);
"""


def _tick_step(total: float) -> float:
    """A round tick interval giving about eight ticks over ``total`` seconds."""
    if total <= 0:
        return 1.0
    raw = total / 8
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * power:
            return float(factor * power)
    return float(10 * power)


def _track_order(steps: Sequence[Interval]) -> list[str]:
    first: dict[str, float] = {}
    for step in steps:
        first.setdefault(step.track, step.start)
    fixed = [t for t in ("fingerprint", "lookup") if t in first]
    tiers = sorted(t for t in first if t.startswith("lookup: "))
    cargo = ["cargo"] if "cargo" in first else []
    rest = sorted(
        (t for t in first if t not in fixed and t not in tiers and t != "cargo"),
        key=lambda t: (first[t], t),
    )
    return fixed + tiers + cargo + rest


def _lanes(steps: Sequence[Interval], by_engine: bool) -> list[tuple[str, str]]:
    """(engine, track) per lane: the run's own tracks, then each engine's in turn."""
    order = _track_order(steps)
    if not by_engine:
        return [("", track) for track in order]
    engines = list(dict.fromkeys(s.engine for s in steps if s.engine))
    lanes = [("", t) for t in order if any(s.track == t and not s.engine for s in steps)]
    for engine in engines:
        lanes += [
            (engine, t) for t in order if any(s.track == t and s.engine == engine for s in steps)
        ]
    return lanes


def timeline_html(
    steps: Sequence[Interval],
    seconds: float,
    title: str,
    summary: Mapping[str, str] | None = None,
    *,
    by_engine: bool = False,
    group: str = "engine",
) -> str:
    """The page: header, legend, time axis, one lane per track (with ``by_engine``,
    a group of lanes per engine of the pool, or per whatever ``group`` names: a
    pipeline's steps), the slowest steps."""
    total = max([seconds, *(s.end for s in steps)], default=seconds) or 1.0
    esc = html.escape
    outer = [s for s in steps if not s.inner]
    rows: list[str] = []
    current = ""

    def lane(label: str, track: str, own: Sequence[Interval]) -> str:
        bars = []
        for step in own:
            left = 100.0 * step.start / total
            width = 100.0 * step.seconds / total
            color = CACHED if step.status == "cached" else COLORS.get(step.phase, "#97a0af")
            tip = f"{track} {step.name}: {step.seconds:.3f} s ({step.status})"
            if step.detail:
                tip += f" — {step.detail}"
            failed = {"failed": " failed", "landed": " mark"}.get(step.status, "")
            bars.append(
                f'<div class="bar{failed}" data-track="{esc(track)}" data-phase="{esc(step.phase)}"'
                f' style="left:{left:.4f}%;width:{width:.4f}%;background:{color}"'
                f' title="{esc(tip)}"></div>'
            )
        return f'<div class="label">{esc(label)}</div><div class="lane">{"".join(bars)}</div>'

    for engine, track in _lanes(outer, by_engine):
        if engine != current:
            current = engine
            rows.append(
                f'<div class="group" data-engine="{esc(engine)}">{esc(group)} {esc(engine)}</div>'
            )

        def here(s: Interval) -> bool:
            return s.track == track and (not by_engine or s.engine == engine)  # noqa: B023

        rows.append(lane(track, track, [s for s in outer if here(s)]))
        inner = [s for s in steps if s.inner and here(s)]
        for row in pack_rows(inner):
            rows.append(lane("\u21b3 steps", track, row))
    tick = _tick_step(total)
    ticks = "".join(
        f'<span class="tick" style="left:{100.0 * i * tick / total:.4f}%">{i * tick:g}s</span>'
        for i in range(int(total / tick) + 1)
    )
    legend = "".join(
        f'<span><i style="background:{c}"></i>{esc(p)}</span>' for p, c in COLORS.items()
    )
    slowest = sorted(
        (s for s in outer if not s.track.startswith("lookup: ")), key=lambda s: -s.seconds
    )[:10]
    slow_rows = "".join(
        f"<tr><td>{esc(s.track)}</td><td>{esc(s.phase)}</td><td>{s.seconds:.2f} s</td>"
        f"<td>{esc(s.status)}</td></tr>"
        for s in slowest
    )
    meta = " · ".join(f"{esc(k)}: {esc(v)}" for k, v in (summary or {}).items())
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>"
        f'<h1>{esc(title)}</h1><div class="meta">{meta}</div>'
        f'<div class="legend">{legend}<span><i style="background:{FAILED}"></i>failed</span></div>'
        f'<div class="chart"><div></div><div class="axis">{ticks}</div>{"".join(rows)}</div>'
        "<table><tr><th>slowest</th><th>phase</th><th>time</th><th>status</th></tr>"
        f"{slow_rows}</table><script>{SCRIPT}</script></body></html>\n"
    )


def write_timeline(
    path: Path,
    steps: Sequence[Interval],
    seconds: float,
    title: str,
    summary: Mapping[str, str] | None = None,
    *,
    by_engine: bool = False,
) -> None:
    """Write the timeline page to ``path``."""
    page = timeline_html(steps, seconds, title, summary, by_engine=by_engine)
    path.write_text(page, encoding="utf-8")
