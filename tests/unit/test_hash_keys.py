"""Consistent-hash keys taken from requests, for every hash_on kind."""

import pytest

from fastgw._core.pure_parser import RequestParser
from fastgw.balance.keys import compile_key

REQUEST = (b"GET /users/42?tenant=acme&empty=&x=1 HTTP/1.1\r\nHost: h\r\n"
           b"X-User-Id: u-7\r\nCookie: a=1; sid=\"s-9\"; b=2\r\nX-Empty:\r\n\r\n")
HEAD = RequestParser().parse(REQUEST)


@pytest.mark.parametrize(("hash_on", "expected"), [
    ("header:X-User-Id", b"u-7"),
    ("header:x-user-id", b"u-7"),
    ("header:X-Missing", None),
    ("header:X-Empty", None),
    ("cookie:sid", b"s-9"),
    ("cookie:a", b"1"),
    ("cookie:none", None),
    ("query:tenant", b"acme"),
    ("query:empty", None),
    ("query:none", None),
    ("ip", b"10.0.0.7"),
    ("path", b"/users/42"),
    ("uri", b"/users/42?tenant=acme&empty=&x=1"),
])
def test_keys(hash_on, expected):
    assert compile_key(hash_on)(HEAD, b"10.0.0.7") == expected


def test_cookie_absent():
    head = RequestParser().parse(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert compile_key("cookie:sid")(head, b"ip") is None
