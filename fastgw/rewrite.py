"""Per-route rewrites of the forwarded request (path, headers) and of the response headers.

Compiled once per plan from the route's config; applied only on routes that have them. They
compute the parts that change (path, header lines, Host); the head is still built in one
allocation by ``RequestHead.forward`` / ``ResponseHead.forward``. Sans-IO: bytes in, bytes out.
"""

from __future__ import annotations


def _lines(headers: dict[str, str]) -> bytes:
    return b"".join(f"{name}: {value}\r\n".encode("latin-1") for name, value in headers.items())


def drop_lines(kept: bytes, names: frozenset[bytes]) -> bytes:
    """``kept`` header lines ("Name: value\\r\\n"...) without those named in ``names``
    (lowercase)."""
    if not kept or not names:
        return kept
    out = []
    for line in kept.split(b"\r\n")[:-1]:
        if line.partition(b":")[0].lower() not in names:
            out.append(line + b"\r\n")
    return b"".join(out)


class HeaderEdit:
    """``set`` replaces every line of a name with one new line, ``add`` appends a line,
    ``remove`` drops every line of a name."""

    __slots__ = ("drop", "append", "host")

    def __init__(self, set_: dict[str, str], add: dict[str, str], remove: list[str]) -> None:
        set_ = dict(set_)
        host = next((v for k, v in set_.items() if k.lower() == "host"), None)
        self.host = host.encode("latin-1") if host is not None else None  # Host is written apart
        set_ = {k: v for k, v in set_.items() if k.lower() != "host"}
        self.drop = frozenset(n.lower().encode() for n in [*set_, *remove])
        self.append = _lines(set_) + _lines(add)

    def apply(self, kept: bytes) -> bytes:
        return drop_lines(kept, self.drop) + self.append


class PathEdit:
    """strip_prefix, replace_prefix and the version segment, in that order of precedence."""

    __slots__ = ("prefix", "replacement", "strip_version")

    def __init__(self, strip_prefix: str | None = None, replace_from: str | None = None,
                 replace_to: str | None = None, strip_version=None) -> None:
        if strip_prefix is not None:
            self.prefix, self.replacement = strip_prefix.encode(), b"/"
        elif replace_from is not None:
            self.prefix, self.replacement = replace_from.encode(), (replace_to or "/").encode()
        else:
            self.prefix, self.replacement = None, b""
        self.strip_version = strip_version  # path -> path, or None

    def apply(self, path: bytes) -> bytes:
        if self.strip_version is not None:
            path = self.strip_version(path)
        prefix = self.prefix
        if prefix is not None and path.startswith(prefix):
            rest = path[len(prefix):]
            if self.replacement == b"/":  # strip: keep exactly one leading slash
                path = rest if rest.startswith(b"/") else b"/" + rest
            else:
                path = self.replacement + rest
        return path
