"""Centrex: a SIP proxy server with an integrated registrar."""

__version__ = "0.1.0"
