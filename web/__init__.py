"""The web layer under the blueprints: htmx helpers, the transaction boundary, templating, error
pages, links and dates as the pages write them.  app.py keeps the factory."""
