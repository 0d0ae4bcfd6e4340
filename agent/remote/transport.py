"""One keep-alive HTTP(S) connection to the support server, standard library only.

Network trouble surfaces as `Transient` (worth a retry); every answer, whatever its
status, comes back as a `Reply`. The token goes into the Authorization header and
nowhere else: `repr` of a client shows the server, never the token.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import urllib.parse
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Optional, Union

API = "/api/v1"

Body = Union[bytes, Iterable[bytes], None]


class Transient(Exception):
    """The connection failed or broke; the message says how, without secrets."""


@dataclass
class Reply:
    status: int
    headers: Dict[str, str]
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None

    def error(self) -> str:
        """The server's one-line reason, if it gave one."""
        data = self.json()
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            return data["error"]
        return f"HTTP {self.status}"


class Client:
    def __init__(self, server: str, token: str, timeout: float = 60.0) -> None:
        parts = urllib.parse.urlsplit(server.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"--server must be an http:// or https:// URL, not {server!r}")
        self.server = f"{parts.scheme}://{parts.netloc}"
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._token = token
        self.timeout = timeout
        self._conn: Optional[http.client.HTTPConnection] = None

    def __repr__(self) -> str:
        return f"Client({self.server!r})"

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self._https:
                self._conn = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self.timeout, context=ssl.create_default_context(),
                    blocksize=1 << 20)
            else:
                self._conn = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout,
                                                        blocksize=1 << 20)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(self, method: str, path: str, headers: Optional[Dict[str, str]] = None,
                body: Body = None, timeout: Optional[float] = None) -> Reply:
        sent = {"Authorization": f"Bearer {self._token}", "User-Agent": "mydiag-agent",
                **(headers or {})}
        conn = self._connection()
        try:
            conn.timeout = timeout or self.timeout
            if conn.sock is not None:
                conn.sock.settimeout(conn.timeout)
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise Transient(_describe(exc, self.server)) from None
        if response.will_close:
            self.close()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, data)

    def get_json(self, path: str) -> Reply:
        return self.request("GET", path, {"Accept": "application/json"})

    def post_json(self, path: str, data: Any) -> Reply:
        return self.request("POST", path, {"Content-Type": "application/json"},
                            json.dumps(data).encode())


def _describe(exc: BaseException, server: str) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return f"{server} refused the connection (is the server running?)"
    if isinstance(exc, socket.timeout):
        return f"{server} did not answer in time"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve {server}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS with {server} failed ({exc.reason or type(exc).__name__})"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected,
                        http.client.IncompleteRead)):
        return f"the connection to {server} broke"
    return f"network error talking to {server} ({type(exc).__name__})"
