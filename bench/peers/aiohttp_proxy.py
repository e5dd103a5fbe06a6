"""A pooled aiohttp reverse proxy: the typical Python gateway, done properly, as a peer to measure.

aiohttp server in front, one ``ClientSession`` with a pooled ``TCPConnector`` behind (upstream
keep-alive), uvloop, no access log. Hop-by-hop headers are dropped both ways. Small responses
with a known length are read whole and sent in one piece; anything else is streamed in 64 KiB
chunks, and request bodies are streamed to the backend. Benchmark use only.

    python -m bench.peers.aiohttp_proxy --listen 127.0.0.1:8081 --backend 127.0.0.1:9001
"""

from __future__ import annotations

import argparse
import asyncio

import aiohttp
import uvloop
from aiohttp import web

HOP_BY_HOP = frozenset(h.lower() for h in (
    "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "TE", "Trailer",
    "Transfer-Encoding", "Upgrade", "Proxy-Connection"))
WHOLE_BODY_LIMIT = 64 * 1024
CHUNK = 64 * 1024


def make_app(backend: str) -> web.Application:
    base = f"http://{backend}"
    app = web.Application(client_max_size=64 * 1024 * 1024)

    async def open_session(app: web.Application) -> None:
        connector = aiohttp.TCPConnector(limit=1024, limit_per_host=0, keepalive_timeout=60,
                                         ttl_dns_cache=None)
        app["session"] = aiohttp.ClientSession(
            connector=connector, auto_decompress=False, skip_auto_headers=("User-Agent",),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=60))

    async def close_session(app: web.Application) -> None:
        await app["session"].close()

    async def forward(request: web.Request) -> web.StreamResponse:
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
        peer = request.remote or ""
        headers.append(("X-Forwarded-For", peer))
        body = request.content if request.body_exists else None
        session: aiohttp.ClientSession = request.app["session"]
        async with session.request(request.method, base + request.path_qs, headers=headers,
                                   data=body, allow_redirects=False) as upstream:
            out_headers = [(k, v) for k, v in upstream.headers.items()
                           if k.lower() not in HOP_BY_HOP and k.lower() != "content-length"]
            length = upstream.content_length
            if length is not None and length <= WHOLE_BODY_LIMIT:
                response = web.Response(status=upstream.status, body=await upstream.read())
                response.headers.extend(out_headers)
                return response
            response = web.StreamResponse(status=upstream.status)
            response.headers.extend(out_headers)
            if length is not None:
                response.content_length = length
            await response.prepare(request)
            async for chunk in upstream.content.iter_chunked(CHUNK):
                await response.write(chunk)
            await response.write_eof()
            return response

    app.router.add_route("*", "/{tail:.*}", forward)
    app.on_startup.append(open_session)
    app.on_cleanup.append(close_session)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="host:port")
    parser.add_argument("--backend", required=True, help="host:port")
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    web.run_app(make_app(args.backend), host=host, port=int(port), access_log=None,
                print=None, backlog=1024, handle_signals=True)


if __name__ == "__main__":
    main()
