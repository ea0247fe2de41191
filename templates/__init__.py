"""Jinja templates for each engine (package data; rendered by generator.render)."""
