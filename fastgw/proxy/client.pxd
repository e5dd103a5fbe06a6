# Declarations that let Cython compile client.py (unchanged) into an extension; see exchange.pxd.
from fastgw.proxy.exchange cimport Exchange


cdef class ClientConnection:
    cdef public object gw, transport, buf, chunks, pending, client_ip, xff_tail
    cdef public Exchange exchange
    cdef public int phase
    cdef public double deadline
    cdef public Py_ssize_t body_left, scan, pos, unsent
    cdef public bint eof, pause_pipeline, pause_upstream, reading_paused, write_paused, fresh
    cdef public bint batching, settling
    cdef public unsigned long long acked

    cpdef data_received(self, data)
    cpdef bint _read_head(self)
    cpdef exchange_done(self, exchange)
