"""Per-route steps, compiled once per plan: what a route does to a request and its response.

A request step is called as ``step(exchange)`` before the request goes upstream; it changes the
forwarded head through ``exchange.rewrite`` and returns None, or returns the (status, message)
the gateway answers with instead (rate limits and auth will). A response step is called as
``step(exchange, kept)`` with the response's forwarded header lines and returns the lines to
send. A route without steps has empty tuples, and the data path skips them without a loop.
Sans-IO: bytes in, bytes out.
"""

from __future__ import annotations

from .rewrite import HeaderEdit, PathEdit


class RewritePath:
    """strip_prefix, replace_prefix, strip_version."""

    __slots__ = ("edit",)

    def __init__(self, edit: PathEdit) -> None:
        self.edit = edit

    def __call__(self, exchange) -> None:
        rewrite = exchange.rewrite
        rewrite.path = self.edit.apply(rewrite.path)


class EditRequestHeaders:
    """request_headers: set/add/remove, and a Host to send instead of the client's."""

    __slots__ = ("edit",)

    def __init__(self, edit: HeaderEdit) -> None:
        self.edit = edit

    def __call__(self, exchange) -> None:
        rewrite = exchange.rewrite
        rewrite.kept = self.edit.apply(rewrite.kept)
        if self.edit.host is not None:
            rewrite.host = self.edit.host


class EditResponseHeaders:
    """response_headers: set/add/remove on the upstream's header lines."""

    __slots__ = ("edit",)

    def __init__(self, edit: HeaderEdit) -> None:
        self.edit = edit

    def __call__(self, exchange, kept: bytes) -> bytes:
        return self.edit.apply(kept)


class DeprecationHeaders:
    """Deprecation and Sunset (RFC 9745, RFC 8594) on responses to a deprecated API version."""

    __slots__ = ("versioning",)

    def __init__(self, versioning) -> None:
        self.versioning = versioning

    def __call__(self, exchange, kept: bytes) -> bytes:
        return kept + self.versioning.response_headers(exchange.version)


def request_steps(action) -> tuple:
    steps = []
    if action.path_edit is not None:
        steps.append(RewritePath(action.path_edit))
    if action.request_edit is not None:
        steps.append(EditRequestHeaders(action.request_edit))
    return tuple(steps)


def response_steps(action, versioning) -> tuple:
    steps = []
    if action.response_edit is not None:
        steps.append(EditResponseHeaders(action.response_edit))
    if versioning is not None and versioning.deprecates:
        steps.append(DeprecationHeaders(versioning))
    return tuple(steps)
