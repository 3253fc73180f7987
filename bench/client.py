"""A small asyncio HTTP/1.1 client for the bench (loopback only): one connection per request
(gunicorn's sync workers close it anyway), cookies kept per simulated parent.  Lighter on
the CPU we share with the servers than a general-purpose client."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode

CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|"X-CSRFToken": "([^"]+)"')


class Failed(Exception):
    """No HTTP answer (refused, reset, timed out)."""


@dataclass
class Answer:
    status: int
    headers: dict
    body: str
    seconds: float

    @property
    def location(self) -> str:
        loc = self.headers.get("location", "")
        return re.sub(r"^https?://[^/]+", "", loc)


@dataclass
class Browser:
    host: str
    port: int
    cookies: dict = field(default_factory=dict)
    timeout: float = 60.0
    log: list = field(default_factory=list)  # (path, status, seconds) of every request

    async def request(self, method: str, path: str, data=None, headers=None) -> Answer:
        if not self.host.startswith("127.") and self.host not in ("localhost", "::1"):
            raise ValueError("the bench only talks to the loopback interface")
        body = urlencode(data, doseq=True).encode() if data is not None else b""
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", "Connection: close",
                 "User-Agent: portail-bench", "Accept-Language: fr"]
        if self.cookies:
            lines.append("Cookie: " + "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
        if data is not None:
            lines += ["Content-Type: application/x-www-form-urlencoded", f"Content-Length: {len(body)}"]
        for k, v in (headers or {}).items():
            lines.append(f"{k}: {v}")
        start = time.monotonic()
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), self.timeout)
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
            raw = await asyncio.wait_for(reader.read(-1), self.timeout)
            writer.close()
        except (OSError, asyncio.TimeoutError) as exc:
            self.log.append((path, 0, time.monotonic() - start))
            raise Failed(f"{method} {path}: {exc!r}") from exc
        seconds = time.monotonic() - start
        head, _sep, content = raw.partition(b"\r\n\r\n")
        head_lines = head.decode("latin-1").split("\r\n")
        try:
            status = int(head_lines[0].split()[1])
        except (IndexError, ValueError) as exc:
            self.log.append((path, 0, seconds))
            raise Failed(f"{method} {path}: bad answer {head_lines[:1]!r}") from exc
        headers: dict = {}
        for line in head_lines[1:]:
            name, _c, value = line.partition(":")
            name, value = name.strip().lower(), value.strip()
            if name == "set-cookie":
                cookie = value.split(";", 1)[0]
                key, _e, val = cookie.partition("=")
                if val and "Max-Age=0" not in value and "expires=Thu, 01 Jan 1970" not in value:
                    self.cookies[key] = val
                else:
                    self.cookies.pop(key, None)
            headers[name] = value
        self.log.append((path, status, seconds))
        return Answer(status, headers, content.decode("utf-8", "replace"), seconds)

    async def get(self, path, headers=None) -> Answer:
        return await self.request("GET", path, headers=headers)

    async def post(self, path, data, headers=None) -> Answer:
        return await self.request("POST", path, data=data, headers=headers)


def csrf_of(html: str) -> str | None:
    match = CSRF_RE.search(html)
    return (match.group(1) or match.group(2)) if match else None


async def login(browser: Browser, slug: str, email: str, password: str) -> bool:
    page = await browser.get(f"/{slug}/connexion")
    token = csrf_of(page.body)
    res = await browser.post(f"/{slug}/connexion", {"csrf_token": token or "", "email": email, "password": password})
    return res.status == 302
