"""python -m harness"""
from .cli import entry

entry()
