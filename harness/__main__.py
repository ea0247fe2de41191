"""python -m cachewright.harness"""
from .launch import entry

entry()
