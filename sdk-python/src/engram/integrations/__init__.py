"""Adapters that plug Engram into agent frameworks, one module per framework.

Each module needs its framework, installed by the extra of the same name, e.g.
``pip install 'engram-memory-client[autogen]'`` for :mod:`engram.integrations.autogen`.
Importing this package imports no framework.
"""
