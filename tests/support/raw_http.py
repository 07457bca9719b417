"""Requests sent as bytes, past what HTTP clients would refuse to send or would rewrite."""

from __future__ import annotations

import http.client
import socket
from urllib.parse import urlsplit


def raw_http(url: str, request: bytes) -> tuple[int, bytes]:
    """One request as bytes on a socket (clients refuse to send malformed headers): (status, whole reply)."""
    where = urlsplit(url)
    with socket.create_connection((where.hostname, where.port), timeout=30) as sock:
        sock.sendall(request)
        reply = b""
        while chunk := sock.recv(65536):  # every request here says Connection: close
            reply += chunk
    return int(reply.split(b" ", 2)[1]), reply


def raw_request(
    url: str, method: str, path: str, headers: dict[str, str] | None = None, body: bytes | None = None
) -> tuple[int, bytes]:
    """A request with its path sent byte for byte: HTTP clients would resolve `..` and re-encode `%2F`."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()
