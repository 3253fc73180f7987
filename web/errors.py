"""The error pages: one page per status, said again at the top of the page for htmx."""

from __future__ import annotations

from flask import Flask, flash, make_response, render_template
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError

from extensions import db
from web.htmx import is_htmx


def init_app(app: Flask) -> None:
    def page(status, title, message):
        response = make_response(render_template("error.html", status=status, title=title, message=message), status)
        if is_htmx():
            # htmx swaps no error answer: the page the user is on reloads and says why at its top
            flash(message, "error")
            response.headers["HX-Refresh"] = "true"
        return response

    @app.errorhandler(400)
    def bad_request(exc):
        return page(400, _("Requête invalide"), _("La demande envoyée n'est pas valide."))

    @app.errorhandler(CSRFError)
    def csrf_error(exc):
        return page(400, _("Formulaire expiré"),
                    _("Le formulaire a expiré ou n'est pas valide. Rechargez la page et recommencez."))

    @app.errorhandler(403)
    def forbidden(exc):
        return page(403, _("Accès refusé"), _("Vous n'avez pas accès à cette page."))

    @app.errorhandler(404)
    def not_found(exc):
        return page(404, _("Page introuvable"), _("La page demandée n'existe pas."))

    @app.errorhandler(405)
    def not_allowed(exc):
        return page(405, _("Action impossible"), _("Cette action n'est pas possible sur cette page."))

    @app.errorhandler(413)
    def too_large(exc):
        return page(413, _("Fichier trop volumineux"), _("Le fichier envoyé est trop volumineux."))

    @app.errorhandler(429)
    def too_many(exc):
        return page(429, _("Trop de tentatives"),
                    _("Trop de tentatives en peu de temps. Patientez une minute puis réessayez."))

    @app.errorhandler(500)
    def server_error(exc):
        db.session.rollback()
        return page(500, _("Erreur du serveur"),
                    _("Une erreur inattendue s'est produite. Réessayez dans un instant."))
