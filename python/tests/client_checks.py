"""Checks of the Python agent client against a running agent (called by examples/python/run.sh).

    python client_checks.py SOCKET KEY SECRET_FILE API_KEY

The agent's config gives KEY a Binance policy and an allow-list of exchange `binance` only.
"""

from __future__ import annotations

import hashlib
import hmac
import sys
import threading
import time

from hsm_custody import (AgentClient, AgentUnavailable, Forbidden, InvalidInput, PolicyDenied,
                         SignedRequest)


def expect(exc: type, fn, *args, **kwargs) -> BaseException:  # type: ignore[no-untyped-def]
    try:
        fn(*args, **kwargs)
    except exc as e:
        return e
    raise AssertionError(f"{fn.__name__} did not raise {exc.__name__}")


def now_ms() -> int:
    return int(time.time() * 1000)


def main() -> None:
    socket_path, key, secret_file, api_key = sys.argv[1:5]
    secret = open(secret_file, "rb").read().strip()
    agent = AgentClient(socket_path)

    assert agent.ping()["pong"] is True
    keys = agent.keys()
    assert [(k.name, k.exchanges) for k in keys] == [(key, ["binance"])], keys

    # Signed as Binance documents: HMAC-SHA256 over query||body, timestamp given by the bot
    # (within 5 s of the agent's clock, which holds caller times to itself).
    query = f"symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=1&timestamp={now_ms()}"
    s = agent.sign(key, "binance", {"method": "POST", "path": "/api/v3/order", "query": query,
                                    "api_key": api_key})
    want = hmac.new(secret, query.encode(), hashlib.sha256).hexdigest()
    assert isinstance(s, SignedRequest) and s.signature == want, s
    assert s.query == f"{query}&signature={want}" and s.header_dict()["X-MBX-APIKEY"] == api_key

    # Refusals, each typed.
    e = expect(Forbidden, agent.sign, "no-such-key", "binance", {"path": "/api/v3/account"})
    assert e.kind == "forbidden"
    expect(Forbidden, agent.sign, key, "kraken", {"path": "/0/private/Balance"})
    expect(Forbidden, agent.mac, key, "sha256", b"anything")  # allow-list lacks `raw`
    e = expect(PolicyDenied, agent.sign, key, "binance",
               {"method": "POST", "path": "/sapi/v1/capital/withdraw/apply",
                "body": "coin=BTC&amount=1"})
    assert e.rule == "withdrawal-guard:binance", e.rule
    expect(InvalidInput, agent.sign, key, "binance", {"path": "/x", "colour": "red"})
    expect(InvalidInput, agent.sign, key, "binance", {"path": ["/x"]})
    expect(AgentUnavailable, AgentClient(socket_path + ".absent").ping)

    # One client shared by 4 threads: every signature is the one for its own request.
    errors: list = []

    def worker(t: int) -> None:
        for n in range(50):
            q = f"symbol=BTCUSDT&quantity={t}.{n}&timestamp={now_ms()}"
            try:
                got = agent.sign(key, "binance", {"method": "GET", "path": "/api/v3/order",
                                                  "query": q}).signature
            except Exception as e:  # noqa: BLE001 - every failure counts, typed or not
                errors.append((t, n, repr(e)))
                continue
            if got != hmac.new(secret, q.encode(), hashlib.sha256).hexdigest():
                errors.append((t, n, "wrong signature"))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    agent.close()

    # Busy-polling off and on sign the same; a peer that answers late, in pieces or not at all.
    q = f"symbol=BTCUSDT&timestamp={now_ms()}"
    want = hmac.new(secret, q.encode(), hashlib.sha256).hexdigest()
    for busy in (0.0, 50e-6, 0.01):
        with AgentClient(socket_path, busy_poll=busy) as c:
            for _ in range(40):
                got = c.sign(key, "binance", {"method": "GET", "path": "/api/v3/order",
                                               "query": q}).signature
                assert got == want, busy
    busy_poll_against_a_slow_peer()
    print("client checks: ping, keys, sign verified, 6 typed refusals, 200 signs from 4 threads, "
          "busy-poll off and on, and against a slow peer")


def busy_poll_against_a_slow_peer() -> None:
    """A stand-in agent on a real socket that answers after 30 ms, in two pieces, then closes:
    the client with a 50 µs look reads each reply whole, stops looking after two empty looks,
    and reports the close."""
    import json
    import os
    import socket as so
    import struct
    import tempfile

    path = os.path.join(tempfile.mkdtemp(), "slow.sock")
    server = so.socket(so.AF_UNIX, so.SOCK_STREAM)
    server.bind(path)
    server.listen(1)

    def serve() -> None:
        conn, _ = server.accept()
        for _ in range(3):
            (n,) = struct.unpack(">I", conn.recv(4, so.MSG_WAITALL))
            request = json.loads(conn.recv(n, so.MSG_WAITALL))
            reply = json.dumps({"id": request["id"], "ok": {"pong": True}}).encode()
            frame = struct.pack(">I", len(reply)) + reply
            time.sleep(0.03)
            conn.sendall(frame[:6])
            time.sleep(0.01)
            conn.sendall(frame[6:])
        conn.recv(4)
        conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    client = AgentClient(path, busy_poll=50e-6)
    for _ in range(3):
        assert client.ping()["pong"] is True
    assert client._busy_misses >= 2, client._busy_misses  # looks paused
    expect(AgentUnavailable, client.ping)
    t.join(timeout=10)
    server.close()


if __name__ == "__main__":
    main()
