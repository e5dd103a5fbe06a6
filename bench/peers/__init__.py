"""Peer reverse proxies the harness runs against fastgw: an aiohttp proxy and a proxy.py plugin."""
