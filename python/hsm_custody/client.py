"""A blocking client for the hsm-custody signing agent (protocol v1, docs/agent-protocol.md).

Pure Python (standard library only): the bot's process never loads the PKCS#11 module, never
sees the PIN and never holds a secret. It sends structured requests over a Unix socket and gets
them back signed, as the agent's policy allows.
"""

from __future__ import annotations

import base64
import json
import os
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from .errors import AgentError, AgentUnavailable, InvalidInput, from_reply

PROTOCOL_VERSION = 1
DEFAULT_SOCKET_ENV = "HSM_CUSTODY_AGENT_SOCKET"
DEFAULT_SOCKET = "/run/hsm-custody/agent.sock"
MAX_REPLY = 1024 * 1024

#: The request encoder, made once: ``json.dumps`` with any non-default argument builds a new
#: ``JSONEncoder`` per call, which was about half of the request's encoding time.
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode

REQUEST_FIELDS = ("method", "path", "query", "body", "timestamp", "nonce", "expires", "api_key",
                  "recv_window", "passphrase", "host")


@dataclass(frozen=True)
class SignedRequest:
    """A request signed by the agent: send ``method`` to ``path`` (+ ``?query`` when not empty)
    with every header in ``headers`` (ordered pairs) and ``body`` as the body."""

    method: str
    path: str
    query: str
    body: str
    headers: List[Tuple[str, str]] = field(default_factory=list)
    signature: str = ""

    def path_and_query(self) -> str:
        """``path`` with ``?query`` appended when the query is not empty."""
        return f"{self.path}?{self.query}" if self.query else self.path

    def header_dict(self) -> Dict[str, str]:
        """The headers as a dict (the last value wins for a repeated name)."""
        return dict(self.headers)


@dataclass(frozen=True)
class KeyAccess:
    """A key this client may use, and the exchanges the agent lets it use it for
    (``None``: not restricted by the agent; the key's own binding still applies)."""

    name: str
    exchanges: Optional[List[str]]


class AgentClient:
    """One connection to the agent. Thread-safe (requests on one connection are serialised);
    open one client per thread for parallel signing.

    >>> agent = AgentClient("/run/hsm-custody/agent.sock")   # doctest: +SKIP
    >>> signed = agent.sign("binance-main", "binance",
    ...                     {"method": "GET", "path": "/api/v3/account"})  # doctest: +SKIP
    """

    def __init__(self, socket_path: Optional[Union[str, "os.PathLike[str]"]] = None,
                 timeout: float = 30.0, busy_poll: float = 200e-6) -> None:
        """``busy_poll``: how long (seconds) a request looks for the agent's reply before it
        sleeps until the reply comes (0: sleep at once). A reply usually comes within 20-70 µs;
        a thread that slept for it is woken by the kernel, which costs tens of µs where idle
        cores sleep (40 µs measured on a VM). Between looks the thread yields its core, and
        after two looks that found nothing the client stops looking (looking again once in
        32 requests), so the look only uses time the core would have idled."""
        path = socket_path or os.environ.get(DEFAULT_SOCKET_ENV) or DEFAULT_SOCKET
        self.socket_path = os.fspath(path)
        self._timeout = timeout
        self._busy_poll = max(0.0, busy_poll)
        self._busy_misses = 0
        self._busy_waits = 0
        self._sock: Optional[socket.socket] = None
        self._poller: Optional["select.poll"] = None
        self._rbuf = b""  # bytes read from the connection past the last reply read
        self._next_id = 1
        self._lock = threading.Lock()

    # -- connection ---------------------------------------------------------------------------
    def _connect(self) -> socket.socket:
        if self._sock is None:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(self._timeout)
            try:
                s.connect(self.socket_path)
            except OSError as e:
                s.close()
                raise AgentUnavailable("unavailable", f"cannot connect to the agent at "
                                       f"{self.socket_path}: {e.strerror or e}") from None
            self._sock = s
            self._poller = select.poll()
            self._poller.register(s, select.POLLIN)
        return self._sock

    def close(self) -> None:
        """Closes the connection (the next request reconnects)."""
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None
                self._poller = None
                self._rbuf = b""

    def __enter__(self) -> "AgentClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _recv_exact(self, s: socket.socket, n: int) -> bytes:
        """``n`` bytes from the connection. Reads as much as has arrived (up to 64 KiB), so a
        reply's length prefix and body usually come in one ``recv``: the body's read is served
        from what is left over (one system call a request fewer, ~3 µs on a VM). Bytes past the
        reply stay for the next read, as they stayed in the socket before."""
        buf = self._rbuf
        if not buf and self._busy_poll > 0:
            self._look()
        while len(buf) < n:
            chunk = s.recv(max(65536, n - len(buf)))
            if not chunk:
                raise AgentUnavailable("unavailable", "the agent closed the connection")
            buf += chunk
        self._rbuf = buf[n:]
        return buf[:n]

    def _look(self) -> None:
        """Looks, without sleeping and yielding the core between looks, for the reply to be
        readable within the busy-poll window (a socket with a timeout waits in ``poll`` inside
        ``recv`` whatever its flags, so the look is a ``poll`` with no wait); skipped after two
        empty looks, but for one request in 32. The read itself is the caller's."""
        poller = self._poller
        if poller is None:
            return
        self._busy_waits += 1
        if self._busy_misses >= 2 and self._busy_waits % 32:
            return
        until = time.perf_counter() + self._busy_poll
        while True:
            if poller.poll(0):
                # Readable, or closed (the caller's recv reports which).
                self._busy_misses = 0
                return
            if time.perf_counter() >= until:
                self._busy_misses += 1
                return
            os.sched_yield()

    def call(self, message: Mapping[str, Any]) -> Dict[str, Any]:
        """Sends one request (``v`` and ``id`` are added) and returns the reply's ``ok``
        object; raises the matching :class:`AgentError` for an ``err`` reply."""
        with self._lock:
            request = dict(message)
            request["v"] = PROTOCOL_VERSION
            request["id"] = self._next_id
            self._next_id += 1
            payload = _ENCODE(request).encode()
            s = self._connect()
            try:
                s.sendall(struct.pack(">I", len(payload)) + payload)
                (length,) = struct.unpack(">I", self._recv_exact(s, 4))
                if not 0 < length <= MAX_REPLY:
                    raise AgentUnavailable("bad_frame", f"reply length {length} out of range")
                reply = json.loads(self._recv_exact(s, length))
            except (OSError, AgentUnavailable) as e:
                self._sock = None
                self._rbuf = b""
                s.close()
                if isinstance(e, AgentError):
                    raise
                raise AgentUnavailable("unavailable", f"agent connection failed: {e}") from None
        if reply.get("id") != request["id"]:
            self.close()
            raise AgentUnavailable("bad_frame", "reply does not answer the request")
        if "err" in reply:
            raise from_reply(reply["err"])
        ok = reply.get("ok")
        if not isinstance(ok, dict):
            raise AgentUnavailable("bad_frame", "reply has neither ok nor err")
        return ok

    # -- ops ----------------------------------------------------------------------------------
    def ping(self) -> Dict[str, Any]:
        """The agent's name and version."""
        return self.call({"op": "ping"})

    def keys(self) -> List[KeyAccess]:
        """The keys this client (its uid/gid) may use."""
        ok = self.call({"op": "keys"})
        return [KeyAccess(str(k["name"]), k.get("exchanges")) for k in ok.get("keys", [])]

    def sign(self, key: str, exchange: str, request: Mapping[str, Any]) -> SignedRequest:
        """Has the agent sign ``request`` for ``exchange`` (a crate exchange id such as
        ``binance``) with key ``key``. ``request`` holds the agent's request fields
        (method, path, query, body, timestamp, nonce, expires, api_key, recv_window,
        passphrase, host); ``None`` values are left out."""
        fields: Dict[str, str] = {}
        for name, value in request.items():
            if name not in REQUEST_FIELDS:
                raise InvalidInput("invalid_input", f"unknown request field `{name}`")
            if value is None:
                continue
            if isinstance(value, str):
                fields[name] = value
            elif isinstance(value, (bool, int, float)):
                fields[name] = json.dumps(value)  # as its JSON text: 5000, true
            else:
                raise InvalidInput("invalid_input",
                                   f"request field `{name}` must be a string or a number")
        ok = self.call({"op": "sign", "key": key, "exchange": exchange, "request": fields})
        headers = [(str(n), str(v)) for n, v in ok.get("headers", [])]
        return SignedRequest(str(ok["method"]), str(ok["path"]), str(ok["query"]),
                             str(ok["body"]), headers, str(ok.get("signature", "")))

    def mac(self, key: str, alg: str, data: bytes, label: Optional[str] = None) -> bytes:
        """A raw HMAC (``alg``: ``sha256``, ``sha384``, ``sha512``) over ``data``; only for keys
        whose policy sets ``allow_raw = true``. Audited as raw, with ``label``."""
        message: Dict[str, Any] = {"op": "mac", "key": key, "alg": alg,
                                   "data_b64": base64.b64encode(bytes(data)).decode()}
        if label is not None:
            message["label"] = label
        return bytes.fromhex(self.call(message)["mac"])
