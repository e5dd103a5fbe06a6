# Declarations that let Cython compile pool.py (unchanged) into an extension; see
# fastgw/proxy/exchange.pxd.

cdef class Pool:
    cdef public object max_idle, idle_timeout
    cdef public list idle, idle_since

    cpdef acquire(self)
    cpdef release(self, conn, now)
