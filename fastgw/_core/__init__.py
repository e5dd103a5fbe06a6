"""The hot-path HTTP/1.1 parser: the compiled extension, or its pure-Python twin.

``IMPLEMENTATION`` says which one is active ("compiled" or "pure"). ``FASTGW_PURE=1`` forces
the twin; so does a missing extension. Both expose the same names.
"""

import os

if os.environ.get("FASTGW_PURE") == "1":
    from .pure_parser import ChunkedReader, ParseError, RequestParser, ResponseParser

    IMPLEMENTATION = "pure"
    WHY = "FASTGW_PURE=1"
else:
    try:
        from .http_parser import ChunkedReader, ParseError, RequestParser, ResponseParser

        IMPLEMENTATION = "compiled"
        WHY = "extension loaded"
    except ImportError as exc:  # the extension was not built
        from .pure_parser import ChunkedReader, ParseError, RequestParser, ResponseParser

        IMPLEMENTATION = "pure"
        WHY = f"compiled extension unavailable ({exc})"

__all__ = [
    "IMPLEMENTATION", "WHY", "ChunkedReader", "ParseError", "RequestParser", "ResponseParser",
]
