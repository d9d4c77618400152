"""SIP messages: parsing, header views, URIs, building (RFC 3261 7, 19, 20, 25).

The message modules run compiled when ``make native`` built them for this
source and this Python, else as Python (``centrex.native``).
"""
