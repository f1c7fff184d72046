"""Omnitill: the point-of-sale edge agent and HQ sync server, under one command line."""

from __future__ import annotations

__version__ = "0.1.0"
