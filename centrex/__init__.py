"""Centrex: a SIP proxy server with an integrated registrar.

The hot modules run compiled when ``make native`` built them for this source
and this Python, else as Python (``centrex.native``): decided here, before
any of them can be imported.
"""

from centrex import native as _native

__version__ = "0.1.0"

_native.choose()
