"""HTTP only: each blueprint is a package with routes.py (and forms.py)."""
