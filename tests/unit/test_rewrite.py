"""Route rewrites: paths and header lines, and the composed head matching forward()."""

import pytest

from fastgw._core.pure_parser import RequestParser
from fastgw.rewrite import HeaderEdit, PathEdit, drop_lines

TAIL = b"1.2.3.4\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: "


@pytest.mark.parametrize(("edit", "path", "expected"), [
    (PathEdit(strip_prefix="/api"), b"/api/users?x=1", b"/users?x=1"),
    (PathEdit(strip_prefix="/api"), b"/api", b"/"),
    (PathEdit(strip_prefix="/api/"), b"/api/users", b"/users"),
    (PathEdit(strip_prefix="/api"), b"/other", b"/other"),
    (PathEdit(replace_from="/old/", replace_to="/new/"), b"/old/x", b"/new/x"),
    (PathEdit(replace_from="/v1/", replace_to="/"), b"/v1/users", b"/users"),
    (PathEdit(strip_version=lambda p: p.replace(b"/v2", b"", 1)), b"/v2/users", b"/users"),
    (PathEdit(), b"/same", b"/same"),
])
def test_paths(edit, path, expected):
    assert edit.apply(path) == expected


def test_header_edit():
    edit = HeaderEdit({"X-Env": "prod", "Host": "internal"}, {"X-Via": "fastgw"}, ["Cookie"])
    kept = b"X-Env: dev\r\nAccept: */*\r\nCookie: a=1\r\nx-env: dev2\r\n"
    assert edit.apply(kept) == b"Accept: */*\r\nX-Env: prod\r\nX-Via: fastgw\r\n"
    assert edit.host == b"internal"


def test_drop_lines_keeps_everything_else():
    assert drop_lines(b"A: 1\r\nB: 2\r\n", frozenset({b"c"})) == b"A: 1\r\nB: 2\r\n"
    assert drop_lines(b"", frozenset({b"a"})) == b""


def test_forward_with_explicit_parts_matches_forward_when_nothing_changes():
    head = RequestParser().parse(b"POST /p HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 9.9.9.9\r\n"
                                 b"Content-Length: 3\r\nX-A: b\r\n\r\n")
    assert head.forward(TAIL, b"h", head.path, head.kept, head.host) == head.forward(TAIL, b"h")
