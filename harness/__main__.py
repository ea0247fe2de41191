"""python -m cachewright.harness"""
from .cli import entry

entry()
