"""Tenancy: the commune of a request or a job, scoped queries, commune folders.

One folder per commune (tenants/<slug>/commune.toml, static/, demo.toml):
a new commune is a folder, not code.
"""
