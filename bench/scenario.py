"""The opening morning: N parents arrive over a minute for the rush activity's places.

Each simulated parent logs in, opens the reservation wizard (the waiting room when it is
their turn to wait, polled like htmx does, at the interval the page asks for; a parent
leaves when the waiting room announces "Complet"), chooses
their children, ticks a session that still has places (another one if it is "Complet",
three tries), and validates, or cancels the démarche when everything is full.
Everything is bounded in time: parents still busy at the deadline are counted as such.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from dataclasses import dataclass, field

from bench.client import Browser, Failed, csrf_of, login

CHECKBOX_RE = re.compile(r'<input type="checkbox" id="c-(\d+)-(\d+)"([^>]*)>')
TRIGGER_RE = re.compile(r'hx-trigger="every (\d+)s"')
ENFANTS_RE = re.compile(r'name="enfants" value="(\d+)"')
HX = {"HX-Request": "true"}


@dataclass
class Parent:
    index: int
    slug: str
    email: str
    activity_id: int
    start: float                  # seconds after the scenario's start
    arrived: float | None = None  # first answer of the wizard (the gate)
    admitted: float | None = None
    waited: bool = False
    outcome: str = "unfinished"   # booked | full | failed | unfinished
    errors: list = field(default_factory=list)
    browser: Browser | None = None


def _free_cells(html: str) -> list[tuple[str, str]]:
    return [(c, s) for c, s, rest in CHECKBOX_RE.findall(html) if "disabled" not in rest and "checked" not in rest]


async def _parent(p: Parent, host: str, port: int, password: str, t0: float, deadline: float, rnd: random.Random):
    await asyncio.sleep(max(0.0, t0 + p.start - time.monotonic()))
    b = p.browser = Browser(host, port, timeout=60)
    try:
        if not await login(b, p.slug, p.email, password):
            p.outcome, _ = "failed", p.errors.append("login")
            return
        step1 = f"/{p.slug}/reservations/{p.activity_id}"
        res = await b.get(step1)
        p.arrived = time.monotonic() - t0
        if res.status == 303 and "/attente/" in res.location:
            p.waited = True
            room = res.location
            poll = await b.get(room)
            while not poll.headers.get("hx-redirect") and poll.status != 303:
                if poll.status != 200:
                    p.errors.append(f"poll {poll.status}")
                    p.outcome = "failed"
                    return
                if 'data-places="0"' in poll.body:  # "Complet" announced in the waiting room: this parent gives up
                    p.outcome = "full"
                    return
                if time.monotonic() > deadline:
                    return
                every = int((TRIGGER_RE.search(poll.body) or [None, 2])[1])
                await asyncio.sleep(every * (0.8 + 0.4 * rnd.random()))
                poll = await b.get(room, headers=HX)
            res = await b.get(step1)
        p.admitted = time.monotonic() - t0
        if res.status != 200:
            p.outcome, _ = "failed", p.errors.append(f"step1 {res.status}")
            return
        kids = ENFANTS_RE.findall(res.body)
        res = await b.post(step1, {"csrf_token": csrf_of(res.body) or "", "enfants": kids})
        if res.status != 302 or "/planning" not in res.location:
            p.outcome, _ = "failed", p.errors.append(f"step1 post {res.status}")
            return
        planning_url = res.location
        cart_path = planning_url.split("/planning")[0]
        page = await b.get(planning_url)
        token = csrf_of(page.body) or ""
        cells = _free_cells(page.body)
        rnd.shuffle(cells)
        held = False
        for child, slot in cells[:3]:
            tick = await b.post(f"{cart_path}/choix", {"child": child, "slot": slot, f"c-{child}-{slot}": "1"},
                                headers={**HX, "X-CSRFToken": token})
            if tick.status != 200:
                p.errors.append(f"tick {tick.status}")
                continue
            if re.search(rf'id="c-{child}-{slot}"[^>]*checked', tick.body):
                held = True
                break
        if held:
            res = await b.post(f"{cart_path}/valider", {"csrf_token": token})
            p.outcome = "booked" if res.status == 303 and "/demandes/" in res.location else "failed"
            if p.outcome == "failed":
                p.errors.append(f"valider {res.status} {res.location}")
        else:
            await b.post(f"{cart_path}/annuler", {"csrf_token": token})
            p.outcome = "full"
    except Failed as exc:
        p.outcome = "failed"
        p.errors.append(str(exc))


async def run(parents: list[Parent], host: str, port: int, password: str, *, limit_seconds: float, seed: int = 7):
    rnd = random.Random(seed)
    t0 = time.monotonic()
    deadline = t0 + limit_seconds
    tasks = [asyncio.create_task(_parent(p, host, port, password, t0, deadline, random.Random(rnd.random())))
             for p in parents]
    done, pending = await asyncio.wait(tasks, timeout=limit_seconds + 30)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=5)
    return time.monotonic() - t0


def spearman(xs: list[float], ys: list[float]) -> float:
    """Spearman's rank correlation (average ranks for ties)."""
    def ranks(values):
        order = sorted(range(len(values)), key=lambda i: values[i])
        out = [0.0] * len(values)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
                j += 1
            for k in range(i, j + 1):
                out[order[k]] = (i + j) / 2 + 1
            i = j + 1
        return out

    n = len(xs)
    if n < 2:
        return 1.0
    rx, ry = ranks(xs), ranks(ys)
    mx, my = sum(rx) / n, sum(ry) / n
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    vx = sum((a - mx) ** 2 for a in rx) ** 0.5
    vy = sum((b - my) ** 2 for b in ry) ** 0.5
    return cov / (vx * vy) if vx and vy else 1.0
