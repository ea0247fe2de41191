"""cachewright's compiler: policy loading, validation, lowering per engine, rendering, verification."""

__version__ = "0.1.0"
