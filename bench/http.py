"""A minimal HTTP/1.1 client and server on asyncio streams, for the bench's load
generator and agency webhook receiver: on a 2-core machine the bench must spend as
little CPU as it can, and httpx or a full server would take a core from the services."""

import asyncio
import json
from collections.abc import Awaitable, Callable


class Connection:
    """One keep-alive connection; requests on it go one after another."""

    def __init__(self, host: str, port: int):
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, bytes]:
        for attempt in (1, 2):
            if self._writer is None:
                self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
            head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Length: {len(body)}\r\n"
            head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
            try:
                self._writer.write(head.encode() + body)
                return await read_response(self._reader)
            except (ConnectionError, asyncio.IncompleteReadError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


async def _read_head(reader: asyncio.StreamReader) -> tuple[str, dict[str, str]]:
    raw = await reader.readuntil(b"\r\n\r\n")
    first, *lines = raw.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return first, headers


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    first, headers = await _read_head(reader)
    status = int(first.split(" ", 2)[1])
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
        return status, body
    return status, await reader.readexactly(int(headers.get("content-length", "0")))


Handler = Callable[[str, str, dict[str, str], bytes], Awaitable[int]]


async def serve(handler: Handler, host: str = "127.0.0.1", port: int = 0) -> asyncio.Server:
    """A keep-alive server: `handler(method, path, headers, body)` returns the status."""

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                first, headers = await _read_head(reader)
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                method, path, _ = first.split(" ", 2)
                status = await handler(method, path, headers, body)
                writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n".encode())
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(on_connection, host, port)


def dumps(value) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()
