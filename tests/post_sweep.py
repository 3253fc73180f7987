"""The machinery of the POST sweep (tests/test_post_sweep.py): read the forms a page offers, make
submissions from them with hypothesis (what a browser would send, then junk in some fields), send
them, and judge each answer as a user would.

The verdict for every answer: no 5xx and no exception; an expected status (a re-rendered form, a
redirect with a flash, or a 400/403/404/409/410/413/422/429 page); a redirect that stays on the site;
an error page that is a French page with a title, never blank; no English WTForms message.

Bounded for the normal suite: the "post-sweep" settings profile (SWEEP_EXAMPLES examples per
route, default 6; derandomized, so a failure comes back the same on every run; SWEEP_SEED=<n>
explores other examples instead).
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from html.parser import HTMLParser
from urllib.parse import urlsplit

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

from core.bounds import MAX_ID

EXAMPLES = int(os.environ.get("SWEEP_EXAMPLES", "6"))
SEED = os.environ.get("SWEEP_SEED")

settings.register_profile(
    "post-sweep",
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=SEED is None,
    database=None,
    print_blob=True,
    phases=(Phase.explicit, Phase.generate, Phase.shrink),
    suppress_health_check=list(HealthCheck),
)

# ---------------------------------------------------------------------------- what a user may type

# Ids nobody has, and numbers no INTEGER column holds.
HOSTILE_IDS = ["0", "-1", "999999", str(MAX_ID), str(MAX_ID + 1), str(2**63), "9" * 30]

CATALOGUE = [
    "", " ", "\t", "\x00", "a\x00b", "\r\n", "%00",
    "abc", "1.5", "1,5", "1e308", "-1e308", "NaN", "inf", "-0", "0x1F", "1_000", "+3", " 7 ",
    "²", "١٢", "٣", "Ⅻ", "9" * 5000,
    "true", "false", "null", "None", "[]", "{}", "[1, 2]", '{"a": 1}',
    "2026-02-30", "2027-02-29", "2028-02-29", "2026-13-01", "0000-00-00", "0001-01-01", "9999-12-31",
    "31/12/9999", "01/01/0001", "29/02/2027", "32/01/2027", "1/1/1", "2027-1-5", "05/01/27",
    "2027-01-05T25:61", "0001-01-01T00:00", "00:00", "24:00", "99:99", "8h30",
    "#zzzzzz", "#FFF", "rgb(0,0,0)",
    "\u202eétiruces\u202c", "مرحبا بالعالم", "עברית", "😀" * 3, "👨‍👩‍👧‍👦", "𝕏𝕐", "\ufeff", "e\u0301\u0301\u0301",
    "<script>alert(1)</script>", "\"><img src=x onerror=alert(1)>", "' OR 1=1 --", "%(num)d %s {0}",
    "{{ 7*7 }}", "../../etc/passwd", "javascript:alert(1)", "//evil.test/", "http://evil.test/",
    "/\\evil.test", "/\t/evil.test", "/\r\nSet-Cookie: x=1",
    "x" * 255, "é" * 1001, "a" * 6000, "a@b", "@@", "a" * 250 + "@exemple.test",
    *HOSTILE_IDS,
]

# English messages of WTForms and Flask-WTF: a French page never shows them.
ENGLISH = [
    "This field is required", "Not a valid", "Invalid Choice", "Invalid email", "Invalid input",
    "Field must be", "Number must be", "is not a valid choice", "CSRF token", "Choices cannot be None",
    "Internal Server Error", "Traceback (most recent call last)",
]

ALLOWED = {200, 302, 303, 400, 403, 404, 409, 410, 413, 422, 429}
# Appended to a value the form accepts, so that it reaches the database (PostgreSQL refuses NUL in text).
TAINTS = ["\x00", "\u202e", "😀", "𝕏", " ", "\r\n", "é" * 300, "'; --"]
PNG_1PX = bytes.fromhex(  # a valid PNG (its checksums too: Pillow's verify() reads them)
    "89504e470d0a1a0a0000000d49484452000000010000000108020000009077"
    "53de0000000c49444154789c63f8ffff3f0005fe02fe0def46b80000000049454e44ae426082")
PDF_TINY = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


# ---------------------------------------------------------------------------- forms as a page offers them

@dataclass
class Field:
    name: str
    kind: str                       # text, password, email, hidden, checkbox, radio, button, select, textarea, file,
    values: list[str] = field(default_factory=list)  # date, datetime-local, color, number, tel…: seen values/options
    multiple: bool = False

    def add(self, value: str | None) -> None:
        if value is not None and value not in self.values:
            self.values.append(value)


@dataclass
class Form:
    action: str                     # the path it posts to
    fields: dict[str, Field] = field(default_factory=dict)
    htmx: bool = False
    source: str = ""                # the page it was read on

    def add(self, name: str, kind: str, value: str | None = None, multiple: bool = False) -> Field:
        f = self.fields.get(name)
        if f is None:
            f = self.fields[name] = Field(name, kind, multiple=multiple)
        f.add(value)
        return f

    def merge(self, other: Form) -> None:
        for f in other.fields.values():
            mine = self.fields.get(f.name)
            if mine is None:
                self.fields[f.name] = Field(f.name, f.kind, list(f.values), f.multiple)
            else:
                for v in f.values:
                    mine.add(v)
        self.htmx = self.htmx or other.htmx


class _Parser(HTMLParser):
    def __init__(self, page: str):
        super().__init__(convert_charrefs=True)
        self.page = page
        self.forms: list[Form] = []
        self.form: Form | None = None
        self.by_id: dict[str, Form] = {}   # a field outside its form names it (form="pay-form")
        self.select: Field | None = None
        self.textarea: Field | None = None
        self.text = ""

    def handle_starttag(self, tag, attrs):
        a = {k: (v if v is not None else "") for k, v in attrs}
        if tag == "form":
            if (a.get("method") or "get").lower() == "post":
                self.form = Form(action=a.get("action") or self.page, source=self.page)
                self.forms.append(self.form)
                if a.get("id"):
                    self.by_id[a["id"]] = self.form
            else:
                self.form = None
            return
        if "hx-post" in a:
            self._htmx(tag, a)
        if tag == "option" and self.select is not None:
            self.select.add(a.get("value", ""))
            return
        owner = self.by_id.get(a["form"]) if a.get("form") else self.form
        if owner is None:
            return
        outer, self.form = self.form, owner
        try:
            self._field(tag, a)
        finally:
            self.form = outer

    def _field(self, tag, a):
        name = a.get("name")
        if tag == "input" and name:
            kind = (a.get("type") or "text").lower()
            if kind in ("reset", "image"):
                return
            if kind == "submit":
                kind = "button"
            if a.get("inputmode") == "numeric" and kind == "text":
                kind = "number"
            default = a.get("value", "on" if kind in ("checkbox", "radio") else "")
            self.form.add(name, kind, default if kind != "file" else None)
        elif tag == "button" and name:
            self.form.add(name, "button", a.get("value", ""))
        elif tag == "select" and name:
            self.select = self.form.add(name, "select", multiple="multiple" in a)
        elif tag == "textarea" and name:
            self.textarea, self.text = self.form.add(name, "textarea"), ""

    def _htmx(self, tag, a):
        form = Form(action=a["hx-post"], htmx=True, source=self.page)
        try:
            vals = json.loads(a.get("hx-vals") or "{}")
        except ValueError:
            vals = {}
        for key, value in vals.items():
            form.add(key, "hidden", str(value))
        for key in [p.strip() for p in (a.get("hx-params") or "").split(",") if p.strip()]:
            if key not in form.fields:
                own = tag == "input" and a.get("name") == key
                form.add(key, (a.get("type") or "checkbox") if own else "checkbox", a.get("value", "1") if own else "1")
        self.forms.append(form)

    def handle_endtag(self, tag):
        if tag == "form":
            self.form = None
        elif tag == "select":
            self.select = None
        elif tag == "textarea" and self.textarea is not None:
            self.textarea.add(self.text.lstrip("\n"))
            self.textarea = None

    def handle_data(self, data):
        if self.textarea is not None:
            self.text += data


def forms_in(html: str, page: str) -> list[Form]:
    """Every POST form of a page, and every element that posts with htmx (its hx-vals and hx-params)."""
    parser = _Parser(page)
    parser.feed(html)
    for form in parser.forms:
        form.action = urlsplit(form.action).path or page
    return parser.forms


def form_for(html: str, page: str, matches: Callable[[str], bool]) -> Form | None:
    """The forms of `page` whose action `matches`, merged (one card per activity, one cell per day…)."""
    found = [f for f in forms_in(html, page) if matches(f.action)]
    if not found:
        return None
    merged = Form(action=found[0].action, source=page)
    for f in found:
        merged.merge(f)
    return merged


# ---------------------------------------------------------------------------- submissions

@dataclass
class Submission:
    fields: list[tuple[str, str]]
    files: list[tuple[str, bytes, str]] = field(default_factory=list)
    htmx: bool = False

    def data(self, csrf: str | None) -> MultiDict:
        data = MultiDict(self.fields)
        if csrf is not None and "csrf_token" not in data:
            data.add("csrf_token", csrf)
        for name, content, filename in self.files:
            data.add(name, (io.BytesIO(content), filename))
        return data

    def headers(self) -> dict:
        return {"HX-Request": "true"} if self.htmx else {}

    def __repr__(self) -> str:
        def short(v):
            return v if len(v) <= 60 else f"{v[:40]!r}…({len(v)} chars)"

        parts = [f"{k}={short(v)!r}" for k, v in self.fields]
        parts += [f"{k}=<file {n!r}, {len(c)} bytes>" for k, c, n in self.files]
        return f"Submission({', '.join(parts)}{', htmx' if self.htmx else ''})"


def plausible(f: Field, today: date, passwords: Iterable[str] = (), emails: Iterable[str] = ()) -> list[str]:
    """What a user filling the form in would send for this field."""
    soon = today + timedelta(days=10)
    seen = [v for v in f.values if v is not None]
    kind = f.kind
    if kind in ("hidden", "checkbox", "radio", "button", "select"):
        return seen or [""]
    if kind == "password":
        return [*passwords, "Nouveau-pass-2027"]
    if kind == "email" or (kind == "text" and "mail" in f.name):
        return [v for v in seen if v] + [*emails, "camille.sweep@exemple.test"]
    if kind == "date":
        return [v for v in seen if v] + [soon.isoformat(), soon.strftime("%d/%m/%Y")]
    if kind == "datetime-local":
        return [v for v in seen if v] + [f"{soon.isoformat()}T08:30"]
    if kind == "color":
        return [v for v in seen if v] + ["#1f4e79"]
    if kind == "number":
        return [v for v in seen if v] + ["3", "0", "20"]
    if kind == "tel":
        return ["06 12 34 56 78"]
    return [v for v in seen if v] + ["Camille", "06 12 34 56 78", soon.strftime("%d/%m/%Y"), "3", ""]


def junk_text(ids: Iterable[str] = ()) -> st.SearchStrategy[str]:
    pool = CATALOGUE + [str(i) for i in ids]
    return st.one_of(
        st.sampled_from(pool),
        st.text(max_size=40),  # any encodable character: NUL, RTL marks, emoji, astral planes
        st.integers(min_value=-(2**80), max_value=2**80).map(str),
        st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)).flatmap(
            lambda d: st.sampled_from([d.isoformat(), f"{d.day:02d}/{d.month:02d}/{d.year:04d}"])),
        st.floats().map(repr),
        st.integers(min_value=101, max_value=12_000).flatmap(lambda n: st.sampled_from(["é" * n, "9" * n])),
    )


JUNK_FILES = st.one_of(
    st.tuples(st.binary(max_size=64), st.sampled_from(["photo.png", "x.jpg", "doc.pdf", "", "../../x.png",
                                                        "\x00.png", "😀.pdf", "a" * 300 + ".png"])),
    st.sampled_from([(b"", "vide.png"), (PNG_1PX[:20], "tronque.png"), (b"%PDF-" + b"\x00" * 40, "faux.pdf"),
                     (b"\x89PNG\r\n\x1a\n" + b"\x00" * (1024 * 1024 + 10), "gros.png"),
                     (b"RIFF\x00\x00\x00\x00WEBP" + b"\x00" * 20, "faux.webp"),
                     (b"<!DOCTYPE html><html><script>alert(1)</script></html>", "facture.pdf"),  # HTML renamed
                     (b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>', "photo.png"),
                     (PDF_TINY, "\x00\u202efdp.exe"), (PNG_1PX, "../" * 40 + "x" * 300 + ".png")]),
)


def field_strategy(f: Field, today: date, ids: list[str], passwords: list[str], emails: list[str], corrupt: bool):
    """A (values, files) pair for one field: plausible, or (corrupt) junk, absent, or a list of values."""
    if f.kind == "file":
        good = st.sampled_from([[], [(PNG_1PX, "photo.png")], [(PDF_TINY, "certificat.pdf")]])
        files = good if not corrupt else st.one_of(JUNK_FILES.map(lambda t: [t]), st.just([]))
        return files.map(lambda fs: ([], fs))
    choices = st.sampled_from(plausible(f, today, passwords, emails))
    if f.multiple:
        good = st.lists(choices, max_size=3, unique=True)
    else:
        good = choices.map(lambda v: [v])
    if not corrupt:
        return good.map(lambda vs: (vs, []))
    junk = junk_text(ids)
    tainted = st.tuples(choices, st.sampled_from(TAINTS)).map(lambda t: t[0] + t[1])  # valid, then stored
    return st.one_of(
        tainted.map(lambda v: [v]),
        junk.map(lambda v: [v]),
        st.just([]),  # the field is missing
        st.lists(st.one_of(choices, junk), min_size=2, max_size=4),  # a list where one value is expected
    ).map(lambda vs: (vs, []))


@st.composite
def submissions(draw, form: Form, *, today: date, ids: list[str] = (), passwords: list[str] = (),
                emails: list[str] = (), htmx: bool | None = None) -> Submission:
    """What a browser would send, with junk in some fields (shrinking towards fewer junk fields): every
    field, and at most one button (the one clicked: "Ajouter des lignes" is not "Enregistrer")."""
    names = sorted(n for n, f in form.fields.items() if n != "csrf_token" and f.kind != "button")
    buttons = [(n, v) for n, f in sorted(form.fields.items()) if f.kind == "button" for v in (f.values or [""])]
    corrupt = draw(st.sets(st.sampled_from(names), max_size=len(names))) if names else set()
    sub = Submission(fields=[])
    for name in names:
        values, files = draw(field_strategy(form.fields[name], today, list(ids), list(passwords), list(emails),
                                            name in corrupt))
        sub.fields.extend((name, v) for v in values)
        sub.files.extend((name, content, filename) for content, filename in files)
    if buttons:
        clicked = draw(st.one_of(st.sampled_from([None, *buttons]),
                                 st.tuples(st.sampled_from(sorted({n for n, _v in buttons})), junk_text(ids))))
        if clicked is not None:
            sub.fields.append(clicked)
    extra = draw(st.lists(st.tuples(st.sampled_from(["next", "back", "id", "x", "\x00", "é" * 3]), junk_text(ids)),
                          max_size=2))
    sub.fields.extend(extra)
    sub.htmx = draw(st.booleans()) if htmx is None else htmx
    return sub


# ---------------------------------------------------------------------------- the verdict

@dataclass
class Verdict:
    status: int
    problems: list[str]


def _off_site(location: str) -> bool:
    """A browser reading this Location would leave the site (it drops tabs and newlines, reads \\ as /)."""
    seen = re.sub(r"[\t\r\n]", "", location).replace("\\", "/")
    parts = urlsplit(seen)
    if parts.scheme and parts.scheme not in ("http", "https"):
        return True
    return parts.netloc not in ("", "localhost")


def judge(response, *, machine: bool = False) -> list[str]:
    """What a user would find wrong with this answer (empty when it is fine).  `machine`: a route a
    server calls (a payment backend's notification), whose refusals are short text/plain answers."""
    problems = []
    status = response.status_code
    if status >= 500:
        problems.append(f"HTTP {status}")
    elif status not in ALLOWED:
        problems.append(f"statut inattendu {status}")
    if 300 <= status < 400:
        location = response.headers.get("Location", "")
        if not location:
            problems.append("redirection sans Location")
        elif _off_site(location):
            problems.append(f"redirection hors du site : {location!r}")
    body = response.get_data(as_text=True) if response.mimetype == "text/html" else ""
    if machine and response.mimetype == "text/plain":
        if status >= 400 and not response.get_data(as_text=True).strip():
            problems.append(f"réponse {status} vide")
    elif 400 <= status < 500:
        if not body.strip():
            problems.append(f"page {status} vide")
        elif "<h1" not in body or '<html lang="fr"' not in body:
            problems.append(f"page {status} sans titre ou pas en français")
    for english in ENGLISH:
        if english in body:
            problems.append(f"message anglais : {english!r}")
    return problems


class SweepFailure(AssertionError):
    """A submission whose answer a user would see as broken (the message says which and why)."""


def send_and_judge(send: Callable[[Submission], object], sub: Submission, label: str, *, machine: bool = False):
    try:
        response = send(sub)
    except Exception as exc:  # noqa: BLE001 (an exception escaping the view is the 500 we look for)
        raise SweepFailure(f"{label}: {type(exc).__name__}: {str(exc)[:300]} — {sub!r}") from exc
    problems = judge(response, machine=machine)
    if problems:
        raise SweepFailure(f"{label}: {'; '.join(problems)} — {sub!r}")
    return response


def sweep(send: Callable[[Submission], object], form: Form, *, today: date, label: str, ids: list[str] = (),
          passwords: list[str] = (), emails: list[str] = (), htmx: bool | None = None,
          max_examples: int | None = None, machine: bool = False) -> None:
    """Hypothesis over the form's submissions; raises SweepFailure (with the smallest example found)."""
    strategy = submissions(form, today=today, ids=list(ids), passwords=list(passwords), emails=list(emails),
                           htmx=(None if form.htmx else False) if htmx is None else htmx)
    profile = settings.get_profile("post-sweep")

    @settings(profile, max_examples=max_examples or profile.max_examples)
    @given(sub=strategy)
    def run(sub):
        send_and_judge(send, sub, label, machine=machine)

    if SEED is not None:
        run = seed(int(SEED))(run)
    run()


def fixed_submissions(form: Form, *, today: date, passwords: list[str] = ()) -> list[Submission]:
    """The same junk in every field at once (a few values that broke forms before), then each field as a
    list: cheap, deterministic, and the first thing a new form meets."""
    names = sorted(n for n, f in form.fields.items() if n != "csrf_token" and f.kind not in ("file", "button"))
    subs = []
    for junk in ("", "\x00", "9" * 30, str(MAX_ID + 1), "-1", "²", "2026-02-30", "\u202e😀", "/\r\nX: 1", "a" * 6000):
        subs.append(Submission(fields=[(n, junk) for n in names]))
    good = {n: plausible(form.fields[n], today, passwords)[0] for n in names}
    subs.append(Submission(fields=[(n, v) for n in names for v in (good[n], good[n] + "x", "")]))
    for taint in ("\x00", "\u202e😀"):  # what the page offers, each value tainted: it may well be saved
        subs.append(Submission(fields=[(n, good[n] + taint) for n in names]))
    return subs
