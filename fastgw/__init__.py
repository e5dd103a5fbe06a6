"""fastgw: an HTTP/1.1 reverse proxy and API gateway for safe upstream upgrades."""

__version__ = "0.1.0"
