"""Starter policies for ``cachewright init``: one commented YAML file per archetype."""
