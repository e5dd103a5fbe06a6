# Declarations that let Cython compile upstream.py (unchanged) into an extension; see exchange.pxd.
from fastgw.proxy.exchange cimport Exchange


cdef class UpstreamConnection:
    cdef public object gw, target, transport, rbuf, chunks, dechunk
    cdef public Exchange exchange
    cdef public int phase, kind
    cdef public long long remaining
    cdef public int interim
    cdef public bint keep_alive, got_bytes, reading_paused, write_paused, eof

    cpdef start(self, exchange, bytes request, bint paused)
    cpdef data_received(self, data)
    cpdef _head(self, bytes buf)
    cpdef _release(self, bint request_sent)
