"""The bare-Flask baseline of `make bench`: the least a Flask app on this machine does for
the same two requests, on the same PostgreSQL, under the same gunicorn.

* GET  /grid?cells=N  a page of N checkbox cells (a table, a Jinja loop), read from N rows
* POST /toggle        a one-row write (UPDATE ... in a transaction), answers a small fragment

No session, no CSRF, no tenancy, no ORM: what a bare app costs, so that our figures can be
read as a ratio measured in the same run.
"""

from __future__ import annotations

import os

from flask import Flask, render_template_string, request
from sqlalchemy import create_engine, text

DATABASE_URL = os.environ["BASELINE_DATABASE_URL"]
ROWS = 2000

app = Flask(__name__)
engine = create_engine(DATABASE_URL, pool_size=5, max_overflow=0)

PAGE = """<!doctype html><html lang="fr"><head><meta charset="utf-8"><title>Planning</title></head><body>
<h1>Planning</h1><form method="post" action="/toggle"><table class="grid"><tbody><tr>
{%- for row in rows %}<td><span class="cell" id="cell-{{ row.id }}"><input type="checkbox" id="c-{{ row.id }}"
 name="c-{{ row.id }}" value="1"{% if row.on %} checked{% endif %}><label for="c-{{ row.id }}">{{ row.label }}</label></span></td>
{%- if loop.index % 7 == 0 %}</tr><tr>{% endif %}{% endfor %}</tr></tbody></table></form></body></html>"""

CELL = """<span class="cell" id="cell-{{ id }}"><input type="checkbox" id="c-{{ id }}" name="c-{{ id }}" value="1"
{%- if on %} checked{% endif %}><label for="c-{{ id }}">Matin</label></span>"""


def init_schema() -> None:
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS bench_cell (id integer PRIMARY KEY, label text NOT NULL,"
                          " \"on\" boolean NOT NULL DEFAULT false)"))
        if not conn.scalar(text("SELECT count(*) FROM bench_cell")):
            conn.execute(text("INSERT INTO bench_cell (id, label) SELECT g, 'Matin' FROM generate_series(1, :n) g"),
                         {"n": ROWS})


@app.get("/grid")
def grid():
    cells = max(1, min(ROWS, request.args.get("cells", 60, type=int)))
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, label, \"on\" FROM bench_cell ORDER BY id LIMIT :n"),
                            {"n": cells}).all()
    return render_template_string(PAGE, rows=rows)


@app.post("/toggle")
def toggle():
    cell = max(1, min(ROWS, request.form.get("id", 1, type=int)))
    want = request.form.get("want") == "1"
    with engine.begin() as conn:
        conn.execute(text("UPDATE bench_cell SET \"on\" = :on WHERE id = :id"), {"on": want, "id": cell})
    return render_template_string(CELL, id=cell, on=want)


init_schema()
engine.dispose()  # gunicorn --preload: each worker opens its own connections after the fork
