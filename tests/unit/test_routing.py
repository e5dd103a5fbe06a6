"""Route matching: first match wins; host, exact path and prefix conditions."""

from fastgw.routing import CompiledRoute, Router


def router(*specs):
    return Router([CompiledRoute(i, f"r{i}", "up", *spec) for i, spec in enumerate(specs)])


def test_catch_all():
    r = router((None, None, "/"))
    assert r.match(b"x", b"/anything?q=1").index == 0


def test_first_match_wins():
    r = router((None, None, "/api"), (None, None, "/api/v2"), (None, None, None))
    assert r.match(b"h", b"/api/v2/x").index == 0
    assert r.match(b"h", b"/other").index == 2


def test_exact_path_ignores_query():
    r = router((None, "/health", None))
    assert r.match(b"h", b"/health?x=1").index == 0
    assert r.match(b"h", b"/health/x") is None


def test_host_is_case_insensitive_and_ignores_port():
    r = router(("api.example.com", None, None), (None, None, None))
    assert r.match(b"API.Example.com:8080", b"/").index == 0
    assert r.match(b"www.example.com", b"/").index == 1
    assert r.match(b"[::1]:80", b"/").index == 1


def test_no_route():
    r = router((None, None, "/a"))
    assert r.match(b"h", b"/b") is None
