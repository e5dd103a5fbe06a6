"""The data path: client and upstream protocols on uvloop, the request exchange between them,
and the state they share."""


def implementation() -> str:
    """"compiled" when the Cython builds of the data path's modules are loaded, else "python"."""
    from . import client, exchange, upstream

    compiled = all(m.__file__.endswith((".so", ".pyd")) for m in (client, exchange, upstream))
    return "compiled" if compiled else "python"
