"""HQ services: plain modules over the database that the API routes and the CLI call.

They never import FastAPI; they take a ``Database`` or a ``Connection`` and raise errors from
``shared.errors``.
"""
