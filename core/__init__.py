"""The one core shared by every commune: models and services.

No request, no HTML and no queue call in here: the web layer and the jobs call it.
"""
