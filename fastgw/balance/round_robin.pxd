# Declarations that let Cython compile round_robin.py (unchanged) into an extension; see
# fastgw/proxy/exchange.pxd.

cdef class RoundRobin:
    cdef public list peers, current
    cdef public dict index
    cdef public set _out
    cdef public tuple _tier
    cdef public object _total, _single

    cpdef pick(self, key=*, exclude=*)
    cpdef report(self, peer, outcome, latency)
