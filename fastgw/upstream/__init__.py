"""Runtime state of upstreams: targets and their keep-alive connection pools."""
