# cython: boundscheck=True, wraparound=True, annotation_typing=False
"""Per-target pool of idle keep-alive upstream connections.

LIFO: the most recently used connection is reused first, so the others age out and close
when the upstream (or ``idle_timeout``) retires them. A connection enters the pool only after
a complete, well-framed response; one that the upstream closes while idle leaves it at once.
The pool knows nothing about HTTP: it holds objects with ``transport`` and ``close()``.
"""

from __future__ import annotations


class Pool:
    __slots__ = ("max_idle", "idle_timeout", "idle", "idle_since")

    def __init__(self, max_idle: int, idle_timeout: float) -> None:
        self.max_idle = max_idle
        self.idle_timeout = idle_timeout
        self.idle: list = []  # stack; top is the most recently released
        self.idle_since: list[float] = []

    def acquire(self):
        """An idle connection that is still open, or None."""
        idle = self.idle
        while idle:
            conn = idle.pop()
            self.idle_since.pop()
            if not conn.transport.is_closing():
                return conn
        return None

    def release(self, conn, now: float) -> None:
        """Keep ``conn`` for reuse, or close it when the pool is full."""
        if len(self.idle) >= self.max_idle:
            conn.close()
            return
        self.idle.append(conn)
        self.idle_since.append(now)

    def discard(self, conn) -> None:
        """Forget ``conn`` (the upstream closed it while idle)."""
        for i in range(len(self.idle) - 1, -1, -1):
            if self.idle[i] is conn:
                del self.idle[i]
                del self.idle_since[i]
                return

    def expire(self, now: float) -> None:
        """Close connections idle for longer than ``idle_timeout`` (oldest are at the bottom)."""
        cutoff = now - self.idle_timeout
        n = 0
        while n < len(self.idle) and self.idle_since[n] <= cutoff:
            n += 1
        if n:
            old = self.idle[:n]
            del self.idle[:n]
            del self.idle_since[:n]
            for conn in old:
                conn.close()

    def limit(self, max_idle: int) -> None:
        """Keep at most ``max_idle`` idle connections from now on (0: drain), closing the oldest
        ones over it now."""
        self.max_idle = max_idle
        extra = len(self.idle) - max_idle
        if extra > 0:
            old = self.idle[:extra]
            del self.idle[:extra]
            del self.idle_since[:extra]
            for conn in old:
                conn.close()

    def close_all(self) -> None:
        idle, self.idle, self.idle_since = self.idle, [], []
        for conn in idle:
            conn.close()
