"""``cachewright compare``: run both engines under one policy and report how they differ."""
