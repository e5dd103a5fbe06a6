# Declarations that let Cython compile exchange.py (unchanged) into an extension: Exchange
# becomes a cdef class with typed fields, and the calls inside this module become C calls.
# Without the extension (FASTGW_NO_EXT=1) exchange.py runs as plain Python, the same code.

cpdef bint connection_closes(bint keep_alive, bint request_sent, bint close_delimited,
                             bint draining, bint client_done)


cdef class Exchange:
    cdef public object gw, client, head, route, version, refusal, group, target, conn
    cdef public object earlier, replay, rewrite, ending
    cdef public bint reused, trying, request_sent, close
    cdef public int status, state, outcome
    cdef public Py_ssize_t bytes_in, bytes_out
    cdef public double t_head, t_attempt, t_sent, t_first, t_done

    cpdef send(self, bytes body, bint complete)
    cpdef bytes response_head(self, object rhead, bint no_body, bint close_delimited)
    cpdef respond(self, object rhead, bint no_body, bytes body)
    cpdef deliver(self, bytes data)
    cpdef deliver_more(self, bytes data)
    cpdef response_done(self)
    cpdef finish(self, ending, outcome=*)
