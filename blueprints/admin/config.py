"""Configuring the commune without code: activities (create, edit, archive, delete when never booked),
refusal motifs, home page text, news, contact address, colours and logo."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from blueprints.admin import bp
from blueprints.admin.common import audit, no_change
from blueprints.admin.forms import ActivityForm, ButtonForm, HomeForm, IdentityForm, MotifsForm, NewsForm
from core import activity_admin as aa
from core import admin_services as svc
from core.bounds import as_id
from core.models import KIND_UNITS, Activity
from extensions import db
from tenants.i18n import tenant_text
from tenants.scoping import get_or_404
from tenants.web import agent_required, current_tenant

WEEKDAY_VALUES = {"0", "1", "2", "3", "4", "5", "6"}
BLANK_UNITS = 2
BLANK_SESSIONS = 3


# ---------------------------------------------------------------------------- activities

@bp.get("/activites")
@agent_required
def activities():
    rows = db.session.scalars(select(Activity).order_by(Activity.archived, Activity.position, Activity.name)).all()
    counts = {a.id: svc.booked_count(a) for a in rows}
    return render_template("admin/activities.html", rows=rows, counts=counts)


def _blank_units(n):
    return [{"id": "", "label": "", "capacity": None} for _ in range(n)]


def _blank_sessions(n):
    return [{"id": "", "title": "", "dates": "", "time_slot": "journee"} for _ in range(n)]


def _data_from(activity: Activity) -> dict:
    bd = activity.booking_deadline or {"kind": "none"}
    cd = activity.cancel_deadline or bd
    calendar = activity.calendar or {}
    data = {
        "name": activity.name, "code": activity.code, "kind": activity.kind, "structure": activity.structure,
        "season": activity.season, "starts_on": activity.starts_on, "ends_on": activity.ends_on,
        "age_min": activity.age_min, "age_max": activity.age_max, "validation": activity.validation_mode,
        "prereservation_until": activity.prereservation_until, "opening_at": activity.opening_at,
        "inscription_open": activity.inscription_open, "inscription_validation": activity.inscription_validation,
        "online_quota_pct": activity.online_quota_pct, "one_per_time_slot": activity.one_per_time_slot,
        "hold_minutes": activity.hold_minutes, "position": activity.position,
        "weekdays": [str(d) for d in calendar.get("weekdays", [0, 1, 2, 3, 4])],
        "public_holidays": calendar.get("public_holidays", "closed"),
        "school_holidays": calendar.get("school_holidays", "ignore"), "zone": calendar.get("zone", ""),
        "closed_dates": "\n".join(date.fromisoformat(d).strftime("%d/%m/%Y") for d in calendar.get("closed_dates", [])),
        "cancel_same": cd == bd,
        "units": [{"id": str(u.id), "label": u.label, "capacity": u.capacity} for u in activity.units]
        + _blank_units(BLANK_UNITS),
        "overrides": aa.overrides_text(activity, aa.current_overrides(activity)),
        "sessions": [{"id": str(s.id), "title": s.title, "dates": aa.dates_text(s), "time_slot": s.time_slot or "journee",
                      "start_time": s.start_time or "", "end_time": s.end_time or "", "places": s.capacity,
                      "theme": s.theme or "", "discipline": s.discipline or "", "age_min": s.age_min,
                      "age_max": s.age_max} for s in aa.sessions_of(activity)] + _blank_sessions(BLANK_SESSIONS),
    }
    for prefix, rule in (("booking", bd), ("cancel", cd)):
        data[f"{prefix}_kind"] = rule.get("kind", "none")
        data[f"{prefix}_days"] = rule.get("days")
        data[f"{prefix}_time"] = rule.get("time", "")
        data[f"{prefix}_skip_weekends"] = bool(rule.get("skip_weekends", False))
        data[f"{prefix}_weekday"] = str(rule.get("weekday", 1))
    return data


NEW_ACTIVITY = {
    "kind": "units", "validation": "commune", "inscription_validation": "commune", "inscription_open": True,
    "online_quota_pct": 100, "hold_minutes": 20, "weekdays": ["0", "1", "2", "3", "4"], "public_holidays": "closed",
    "school_holidays": "ignore", "booking_kind": "none", "cancel_same": True, "booking_weekday": "1",
    "cancel_weekday": "1", "units": _blank_units(3), "sessions": _blank_sessions(BLANK_SESSIONS),
}


def _deadline(form: ActivityForm, prefix: str, problems: dict) -> dict:
    kind = getattr(form, f"{prefix}_kind").data
    time = (getattr(form, f"{prefix}_time").data or "").strip() or "23:59"
    if kind == "days_before":
        days = getattr(form, f"{prefix}_days").data
        if days is None:
            problems[f"{prefix}_days"] = _("Indiquez le nombre de jours.")
            days = 0
        return {"kind": "days_before", "days": days, "time": time,
                "skip_weekends": bool(getattr(form, f"{prefix}_skip_weekends").data)}
    if kind == "weekday_before_week":
        weekday = getattr(form, f"{prefix}_weekday").data
        return {"kind": "weekday_before_week", "weekday": int(weekday) if weekday in WEEKDAY_VALUES else 1,
                "time": time}
    return {"kind": "none"}


def _free_code(name: str) -> str:
    base = aa.slugify(name)
    code, n = base, 2
    while db.session.scalar(select(Activity.id).where(Activity.code == code)) is not None:
        code = f"{base}-{n}"
        n += 1
    return code


def _plan(form: ActivityForm, activity: Activity | None) -> aa.Plan:
    problems: dict = {}
    if activity is not None:
        code = activity.code
    elif (form.code.data or "").strip():
        code = form.code.data.strip()
        if aa.slugify(code) != code:
            problems["code"] = _("Utilisez seulement des lettres minuscules sans accent, des chiffres et des tirets.")
    else:
        code = _free_code(form.name.data or "")
    closed, error = aa.parse_closed_dates(form.closed_dates.data)
    if error:
        problems["closed_dates"] = error
    calendar = {"weekdays": sorted({int(d) for d in (form.weekdays.data or []) if d in WEEKDAY_VALUES}),
                "public_holidays": form.public_holidays.data, "school_holidays": form.school_holidays.data,
                "closed_dates": closed}
    if form.zone.data in ("A", "B", "C"):
        calendar["zone"] = form.zone.data
    booking = _deadline(form, "booking", problems)
    cancel = booking if form.cancel_same.data else _deadline(form, "cancel", problems)
    spec = {
        "code": code, "name": (form.name.data or "").strip(), "kind": form.kind.data,
        "structure": (form.structure.data or "").strip() or None, "season": (form.season.data or "").strip(),
        "starts_on": form.starts_on.data, "ends_on": form.ends_on.data,
        "ages": [form.age_min.data, form.age_max.data], "validation": form.validation.data,
        "prereservation_until": form.prereservation_until.data if form.validation.data == "prereservation" else None,
        "inscription_validation": form.inscription_validation.data,
        "inscription_open": bool(form.inscription_open.data), "online_quota_pct": form.online_quota_pct.data,
        "one_per_time_slot": bool(form.one_per_time_slot.data), "hold_minutes": form.hold_minutes.data,
        "booking_deadline": booking, "cancel_deadline": cancel, "calendar": calendar,
        "position": form.position.data or 0, "opening_at": form.opening_at.data,
    }
    plan = aa.Plan(spec=spec)
    for path, message in problems.items():
        plan.problem(path, message)
    codes = aa.existing_unit_codes(activity)
    taken = set(codes.values())
    for i, entry in enumerate(form.units.entries):
        row = entry.form
        uid = as_id(row.id.data) if as_id(row.id.data) in codes else None
        label = (row.label.data or "").strip()
        code = codes[uid] if uid else (aa.unit_code(label, taken) if label else "")
        plan.units.append(aa.UnitInput(index=i, id=uid, label=label, capacity=row.capacity.data,
                                       remove=bool(row.remove.data), code=code))
    existing_sessions = {s.id for s in aa.sessions_of(activity)} if activity is not None else set()
    for i, entry in enumerate(form.sessions.entries):
        row = entry.form
        sid = as_id(row.id.data) if as_id(row.id.data) in existing_sessions else None
        try:
            dates = aa.parse_dates(row.dates.data)
        except ValueError as err:
            plan.problem(("sessions", i, "dates"), str(err))
            dates = []
        plan.sessions.append(aa.SessionInput(
            index=i, id=sid, title=(row.title.data or "").strip(), dates=dates, time_slot=row.time_slot.data,
            start_time=(row.start_time.data or "").strip() or None, end_time=(row.end_time.data or "").strip() or None,
            places=row.places.data, theme=(row.theme.data or "").strip(), discipline=(row.discipline.data or "").strip(),
            age_min=row.age_min.data, age_max=row.age_max.data, remove=bool(row.remove.data)))
    if form.kind.data == KIND_UNITS:
        overrides, error = aa.parse_overrides(form.overrides.data, plan.units)
        if error:
            plan.problem("overrides", error)
        plan.overrides = overrides
    return plan


def _show_problems(form: ActivityForm, plan: aa.Plan) -> dict:
    """Put each problem next to its field; the table-level ones are returned for the page."""
    general = {}
    for path, message in plan.problems.items():
        if isinstance(path, tuple):
            name, index, field = path
            entries = getattr(form, name).entries
            if index < len(entries):
                entries[index].form[field].errors = list(entries[index].form[field].errors) + [message]
        elif path in ("units", "sessions"):
            general[path] = message
        else:
            field = getattr(form, path)
            field.errors = list(field.errors) + [message]
    return general


def _activity_page(form, activity, general=None, status=200):
    counts = svc.activity_bookings(activity) if activity is not None else None
    return render_template("admin/activity_form.html", form=form, activity=activity, general=general or {},
                           counts=counts, buttons=ButtonForm()), status


def _save_activity(activity: Activity | None):
    form = ActivityForm()
    if request.form.get("more"):
        for _i in range(2):
            form.units.append_entry()
            form.sessions.append_entry()
        no_change()
        return _activity_page(form, activity)
    valid = form.validate_on_submit()
    plan = _plan(form, activity)
    if valid:
        aa.check(activity, plan)
    general = _show_problems(form, plan)
    if not valid or plan.problems:
        no_change()
        return _activity_page(form, activity, general)
    tenant = current_tenant()
    saved = aa.save(activity, plan, zone=tenant.setting("zone_vacances", default="A"))
    if activity is None:
        audit(_("Activité créée : %(name)s", name=saved.name))
        flash(_("L'activité %(name)s est créée.", name=saved.name), "success")
    else:
        audit(_("Activité modifiée : %(name)s", name=saved.name))
        flash(_("L'activité %(name)s est enregistrée.", name=saved.name), "success")
    return redirect(url_for("admin.activity_edit", activity_id=saved.id), code=303)


@bp.route("/activites/nouvelle", methods=["GET", "POST"])
@agent_required
def activity_new():
    if request.method == "POST":
        return _save_activity(None)
    return _activity_page(ActivityForm(data=dict(NEW_ACTIVITY)), None)


@bp.route("/activites/<int:activity_id>", methods=["GET", "POST"])
@agent_required
def activity_edit(activity_id):
    activity = get_or_404(db.session, Activity, activity_id)
    if request.method == "POST":
        return _save_activity(activity)
    return _activity_page(ActivityForm(data=_data_from(activity)), activity)


@bp.post("/activites/<int:activity_id>/supprimer")
@agent_required
def activity_delete(activity_id):
    activity = get_or_404(db.session, Activity, activity_id)
    counts = svc.activity_bookings(activity)
    if any(counts.values()):
        no_change()
        flash(_("%(name)s a des réservations (%(reservations)d), des inscriptions (%(inscriptions)d) ou des demandes "
                "(%(lines)d) : elle ne peut pas être supprimée. Archivez-la : elle ne sera plus proposée aux familles "
                "et son historique est conservé.", name=activity.name, **counts), "error")
        return redirect(url_for("admin.activity_edit", activity_id=activity.id), code=303)
    name = activity.name
    svc.delete_activity(activity)
    audit(_("Activité supprimée : %(name)s", name=name))
    flash(_("L'activité %(name)s est supprimée.", name=name), "success")
    return redirect(url_for("admin.activities"), code=303)


@bp.post("/activites/<int:activity_id>/archiver")
@agent_required
def activity_archive(activity_id):
    activity = get_or_404(db.session, Activity, activity_id)
    activity.archived = request.form.get("archiver") != "0"
    if activity.archived:
        text = _("L'activité %(name)s est archivée : elle n'est plus proposée aux familles.", name=activity.name)
    else:
        text = _("L'activité %(name)s est de nouveau proposée aux familles.", name=activity.name)
    audit(text)
    flash(text, "success")
    return redirect(url_for("admin.activity_edit", activity_id=activity.id), code=303)


# ---------------------------------------------------------------------------- the commune

def _fr(value) -> str:
    if isinstance(value, dict):
        return value.get("fr", "")
    return value or ""


def _en(value) -> str:
    return value.get("en", "") if isinstance(value, dict) else ""


def _forms(tenant, **given):
    home = tenant.setting("home", default={}) or {}
    forms = {
        "motifs": MotifsForm(formdata=None, data={"motifs": "\n".join(svc.refusal_motifs(tenant))}),
        "home": HomeForm(formdata=None, prefix="accueil", data={f"{k}_{lang}": (_fr if lang == "fr" else _en)(home.get(k))
                                             for k in ("title", "tagline", "intro", "services")
                                             for lang in ("fr", "en")}),
        "news": NewsForm(formdata=None, prefix="actu"),
        "identity": IdentityForm(formdata=None, data={
            "contact_email": tenant.setting("contact_email", default=""),
            "primary": tenant.setting("branding", "primary", default="#1f4e79"),
            "accent": tenant.setting("branding", "accent", default="#c0392b")}),
    }
    forms.update(given)
    return forms


def _settings_page(tenant, status=200, **given):
    news = tenant.setting("news", default=[]) or []
    return render_template("admin/commune.html", forms=_forms(tenant, **given), news=news, buttons=ButtonForm(),
                           tenant_text=tenant_text), status


@bp.get("/commune")
@agent_required
def commune_settings():
    return _settings_page(current_tenant())


def _saved(tenant, anchor: str, what: str, message: str, **settings):
    """Store commune settings, record them in the audit log, tell the agent, back to the block."""
    svc.update_settings(tenant, **settings)
    audit(what)
    flash(message, "success")
    return redirect(url_for("admin.commune_settings") + f"#{anchor}", code=303)


@bp.post("/commune/motifs")
@agent_required
def settings_motifs():
    tenant = current_tenant()
    form = MotifsForm()
    valid = form.validate_on_submit()
    motifs = [m.strip() for m in (form.motifs.data or "").splitlines() if m.strip()]
    if valid and any(len(m) > 200 for m in motifs):
        form.motifs.errors.append(_("Chaque motif doit tenir en 200 caractères au plus."))
        valid = False
    if not valid:
        no_change()
        return _settings_page(tenant, motifs=form)
    return _saved(tenant, "bloc-motifs", _("Motifs de refus modifiés"),
                  _("Les motifs de refus sont enregistrés."), refusal_motifs=motifs)


@bp.post("/commune/accueil")
@agent_required
def settings_home():
    tenant = current_tenant()
    form = HomeForm(prefix="accueil")
    if not form.validate_on_submit():
        no_change()
        return _settings_page(tenant, home=form)
    home = dict(tenant.setting("home", default={}) or {})
    for key in ("title", "tagline", "intro", "services"):
        fr = (getattr(form, f"{key}_fr").data or "").strip()
        en = (getattr(form, f"{key}_en").data or "").strip()
        if fr or en:
            home[key] = {"fr": fr, "en": en} if en else {"fr": fr}
        else:
            home.pop(key, None)
    return _saved(tenant, "bloc-accueil", _("Texte de la page d'accueil modifié"),
                  _("La page d'accueil est enregistrée."), home=home)


@bp.post("/commune/actualites")
@agent_required
def settings_news_add():
    tenant = current_tenant()
    form = NewsForm(prefix="actu")
    if not form.validate_on_submit():
        no_change()
        return _settings_page(tenant, news=form)
    item = {"date": form.date.data.isoformat(),
            "title": {"fr": form.title_fr.data.strip(), **({"en": form.title_en.data.strip()} if form.title_en.data else {})},
            "body": {"fr": form.body_fr.data.strip(), **({"en": form.body_en.data.strip()} if form.body_en.data else {})}}
    news = list(tenant.setting("news", default=[]) or [])
    news.append(item)
    news.sort(key=lambda n: str(n.get("date", "")), reverse=True)
    return _saved(tenant, "bloc-actualites", _("Actualité publiée : %(title)s", title=item["title"]["fr"]),
                  _("L'actualité est publiée sur la page d'accueil."), news=news)


@bp.post("/commune/actualites/<int:index>/supprimer")
@agent_required
def settings_news_delete(index):
    tenant = current_tenant()
    news = list(tenant.setting("news", default=[]) or [])
    if 0 <= index < len(news):
        removed = news.pop(index)
        svc.update_settings(tenant, news=news)
        audit(_("Actualité retirée : %(title)s", title=tenant_text(removed.get("title"))))
        flash(_("L'actualité est retirée."), "success")
    else:
        no_change()
    return redirect(url_for("admin.commune_settings") + "#bloc-actualites", code=303)


LOGO_TYPES = {b"\x89PNG\r\n\x1a\n": "png", b"\xff\xd8\xff": "jpg", b"RIFF": "webp"}
LOGO_MAX = 1024 * 1024


def _logo_kind(head: bytes) -> str | None:
    for magic, ext in LOGO_TYPES.items():
        if head.startswith(magic) and (ext != "webp" or head[8:12] == b"WEBP"):
            return ext
    return None


@bp.post("/commune/identite")
@agent_required
def settings_identity():
    tenant = current_tenant()
    form = IdentityForm()
    valid = form.validate_on_submit()
    upload = form.logo.data
    content, ext = None, None
    if upload and getattr(upload, "filename", ""):
        content = upload.read(LOGO_MAX + 1)
        ext = _logo_kind(content[:16])
        if len(content) > LOGO_MAX:
            form.logo.errors.append(_("Le logo dépasse 1 Mo."))
            valid = False
        elif ext is None:
            form.logo.errors.append(_("Le logo doit être une image PNG, JPEG ou WebP."))
            valid = False
    if not valid:
        no_change()
        return _settings_page(tenant, identity=form)
    branding = dict(tenant.setting("branding", default={}) or {})
    branding.update(primary=form.primary.data.strip().lower(), accent=form.accent.data.strip().lower())
    if content is not None:
        name = f"uploads/logo-{hashlib.sha256(content).hexdigest()[:12]}.{ext}"
        target = Path(current_app.config["TENANTS_DIR"]) / tenant.slug / "static" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        branding["logo"] = name
    return _saved(tenant, "bloc-identite", _("Contact, couleurs ou logo modifiés"),
                  _("L'identité de la commune est enregistrée."), contact_email=form.contact_email.data.strip().lower(), branding=branding)
