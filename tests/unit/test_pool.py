"""The per-target connection pool: LIFO reuse, bounded idle, idle timeout, stale removal."""

from fastgw.upstream.pool import Pool


class FakeTransport:
    def __init__(self):
        self.closing = False

    def is_closing(self):
        return self.closing


class Conn:
    """Stands in for an UpstreamConnection: the pool only uses transport and close()."""

    def __init__(self, name):
        self.name = name
        self.transport = FakeTransport()
        self.closed = False

    def close(self):
        self.closed = True
        self.transport.closing = True


def test_lifo_reuse():
    pool = Pool(max_idle=4, idle_timeout=60)
    a, b = Conn("a"), Conn("b")
    pool.release(a, 0)
    pool.release(b, 1)
    assert pool.acquire() is b
    assert pool.acquire() is a
    assert pool.acquire() is None


def test_bounded_idle_closes_the_extra():
    pool = Pool(max_idle=1, idle_timeout=60)
    a, b = Conn("a"), Conn("b")
    pool.release(a, 0)
    pool.release(b, 0)
    assert b.closed and not a.closed
    assert pool.idle == [a]


def test_closing_connections_are_skipped():
    pool = Pool(max_idle=4, idle_timeout=60)
    a, b = Conn("a"), Conn("b")
    pool.release(a, 0)
    pool.release(b, 0)
    b.transport.closing = True
    assert pool.acquire() is a


def test_expire_closes_only_old_connections():
    pool = Pool(max_idle=4, idle_timeout=10)
    old, new = Conn("old"), Conn("new")
    pool.release(old, 0)
    pool.release(new, 8)
    pool.expire(11)
    assert old.closed and not new.closed
    assert pool.idle == [new]


def test_discard_forgets_a_connection():
    pool = Pool(max_idle=4, idle_timeout=10)
    a, b = Conn("a"), Conn("b")
    pool.release(a, 0)
    pool.release(b, 0)
    pool.discard(a)
    assert pool.idle == [b] and len(pool.idle_since) == 1


def test_limit_closes_the_oldest_over_the_new_bound_and_zero_drains():
    pool = Pool(max_idle=4, idle_timeout=60)
    conns = [Conn(str(i)) for i in range(4)]
    for i, c in enumerate(conns):
        pool.release(c, i)
    pool.limit(2)
    assert [c.closed for c in conns] == [True, True, False, False]
    assert pool.acquire() is conns[3]
    pool.limit(0)  # a drained target: what is idle closes, what comes back closes too
    assert conns[2].closed and pool.idle == []
    late = Conn("late")
    pool.release(late, 9)
    assert late.closed and pool.idle == []
