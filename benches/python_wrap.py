#!/usr/bin/env python3
"""What a ccxt bot pays per private request for signing through ``hsm_custody.ccxt.wrap``
(issue 29): stock ccxt's ``sign`` with the secret in memory against the same ``sign`` of a
wrapped instance, whose signature comes from the agent (through the guard rails), in one
process, paired in rounds.

Run by ``benches/python_wrap.rs`` (``cargo bench --bench python_wrap [-- --quick]``), which
makes the token, starts the agent and passes this script, on stdin, a JSON object::

    {"socket": "/path/agent.sock",
     "venues": [{"ccxt": "binance", "key": "bn", "secret": "...", "apiKey": "...",
                 "password": null}, ...]}

Arguments: ``--quick`` (3 rounds, fewer iterations), ``--rounds N``, ``--iterations N``,
``--profile`` (cProfile of the wrapped sign loop of the first request instead of the table).

Each cell times ``exchange.sign(path, api, method, params)`` (what ccxt does per private
request before it sends anything) with ``time.perf_counter_ns`` after a warm-up, and keeps the
median and p99 of the per-call times; the table gives the median over the rounds [min–max]. The
wrap cost is the wrapped median minus the stock median of the same round. Its Python part is
measured apart: the same wrapped ``sign`` with the agent's reply canned (no socket, no agent),
minus stock; the rest is the agent round trip. A last row times ``AgentClient.sign`` alone. It is also given as a
fraction of an exchange REST round trip, for two assumed round trips (not measured here):
20 ms (bot in the exchange's region) and 100 ms (another region).

Before timing, each request is signed once by both instances with the clock and randomness
frozen (as ``python/tests/oracle.py`` does), and their outputs must be identical: the bench
measures a real, equivalent signature.
"""

from __future__ import annotations

import argparse
import gc
import inspect
import json
import os
import platform
import struct
import sys
import time
from typing import Any, Callable, Dict, List, Sequence, Tuple

import ccxt

import hsm_custody
from hsm_custody import AgentClient
from hsm_custody.ccxt import wrap

#: Assumed exchange REST round trips (ms), the wrap cost is reported as a fraction of each.
ROUND_TRIPS_MS = (20.0, 100.0)

ORDER_BN = {"symbol": "BTCFDUSD", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
            "quantity": "0.01000000", "price": "43250.10"}
ORDER_OKX = {"instId": "BTC-USDT", "tdMode": "cash", "side": "buy", "ordType": "limit",
             "sz": "0.01", "px": "30000"}

#: (label, ccxt id, ccxt implicit endpoint, params)
REQUESTS: Tuple[Tuple[str, str, str, Dict[str, Any]], ...] = (
    ("Binance POST /api/v3/order", "binance", "private_post_order", ORDER_BN),
    ("Binance GET /api/v3/account", "binance", "private_get_account",
     {"omitZeroBalances": "true"}),
    ("OKX POST /api/v5/trade/order", "okx", "private_post_trade_order", ORDER_OKX),
)


def instance(venue: Dict[str, Any], secret: bool) -> Any:
    config: Dict[str, Any] = {"apiKey": venue["apiKey"]}
    if secret:
        config["secret"] = venue["secret"]
    if venue.get("password") is not None:
        config["password"] = venue["password"]
    exchange = getattr(ccxt, venue["ccxt"])(config)
    exchange.options["timeDifference"] = 0
    return exchange


def frozen(exchange: Any, ms: int) -> Any:
    """The instance's clock and randomness frozen (python/tests/oracle.py's `freeze`)."""
    exchange.milliseconds = lambda: ms
    exchange.seconds = lambda: ms // 1000
    exchange.microseconds = lambda: ms * 1000
    exchange.uuid = lambda: "3b241101-e2bb-4255-8caf-4136c566a962"
    exchange.uuid16 = lambda length=16: "0123456789abcdef0123456789abcdef"[:length]
    exchange.uuid22 = lambda length=22: "0123456789abcdef0123456789abcdef"[:length]
    return exchange


def canonical(out: Dict[str, Any]) -> Dict[str, Any]:
    headers = out.get("headers")
    return {"url": out.get("url"), "method": out.get("method"), "body": out.get("body"),
            "headers": None if headers is None else list(dict(headers).items())}


def sign_call(exchange: Any, endpoint: str, params: Dict[str, Any]) -> Callable[[], Any]:
    entry = inspect.getattr_static(exchange, endpoint)
    path, api, method = entry.path, entry.api, entry.method
    sign = exchange.sign

    def call() -> Any:
        return sign(path, api, method, dict(params))
    return call


def percentile(sorted_ns: List[int], q: float) -> float:
    return sorted_ns[min(len(sorted_ns) - 1, int(len(sorted_ns) * q))] / 1000.0


def latency(call: Callable[[], Any], n: int) -> Tuple[float, float]:
    """(median, p99) µs of ``n`` calls after ``n // 10`` warm-up calls."""
    for _ in range(max(1, n // 10)):
        call()
    gc.collect()
    clock = time.perf_counter_ns
    times = [0] * n
    for i in range(n):
        t = clock()
        call()
        times[i] = clock() - t
    times.sort()
    return percentile(times, 0.5), percentile(times, 0.99)


def spread(values: Sequence[float]) -> Tuple[float, float, float]:
    v = sorted(values)
    return v[len(v) // 2], v[0], v[-1]


def cell(values: Sequence[float], fmt: str = "{:.1f}") -> str:
    m, lo, hi = spread(values)
    return f"{fmt.format(m)} [{fmt.format(lo)}–{fmt.format(hi)}]"


def check_equivalent(venues: Dict[str, Dict[str, Any]], socket_path: str) -> None:
    """Each request signed once by stock and wrapped ccxt with the same frozen clock: the
    outputs must be byte-for-byte equal (and the signature must be a real one)."""
    ms = int(time.time() * 1000)
    for label, ccxt_id, endpoint, params in REQUESTS:
        venue = venues[ccxt_id]
        stock = frozen(instance(venue, secret=True), ms)
        wrapped = wrap(frozen(instance(venue, secret=False), ms), key=venue["key"],
                       agent=socket_path)
        a = canonical(sign_call(stock, endpoint, params)())
        b = canonical(sign_call(wrapped, endpoint, params)())
        if a != b:
            sys.exit(f"python_wrap.py: {label}: wrapped ccxt's request differs from stock "
                     f"ccxt's:\n  stock:   {a}\n  wrapped: {b}")
        if venue["secret"] in json.dumps(b) or "HSMCUSTODY" in json.dumps(b):
            sys.exit(f"python_wrap.py: {label}: the wrapped request carries no real signature")


def _agent_id(ccxt_id: str, endpoint: str, exchange: Any) -> str:
    from hsm_custody.ccxt import agent_exchange_id
    out = agent_exchange_id(ccxt_id, inspect.getattr_static(exchange, endpoint).api)
    assert out is not None
    return out


class _CannedSocket:
    """Stands for the agent's socket in an :class:`AgentClient`: each request sent is answered
    with one recorded reply (its id set to the request's), so the client's own code runs whole
    (encoding, framing, reading, decoding) without a socket or an agent."""

    def __init__(self, client: AgentClient, ok: Dict[str, Any]) -> None:
        self._client = client
        self._ok = json.dumps(ok, separators=(",", ":"))
        self._buf = b""

    def sendall(self, data: bytes) -> None:
        body = f'{{"v":1,"id":{self._client._next_id - 1},"ok":{self._ok}}}'.encode()
        self._buf = struct.pack(">I", len(body)) + body

    def recv(self, n: int) -> bytes:
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def close(self) -> None:
        pass


def _canned_agent(ok: Dict[str, Any]) -> AgentClient:
    client = AgentClient("/nonexistent")
    client._sock = _CannedSocket(client, ok)  # type: ignore[assignment]
    return client


def main(argv: Sequence[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--iterations", type=int)
    ap.add_argument("--profile", action="store_true")
    args, _ = ap.parse_known_args(argv)
    rounds = args.rounds or (3 if args.quick else 5)
    n = args.iterations or (500 if args.quick else 2000)

    setup = json.load(sys.stdin)
    socket_path = setup["socket"]
    venues = {v["ccxt"]: v for v in setup["venues"]}

    check_equivalent(venues, socket_path)

    # One stock and one wrapped instance per exchange, as a bot holds them (one agent
    # connection per wrapped instance, opened on first use).
    stock = {k: instance(v, secret=True) for k, v in venues.items()}
    wrapped = {k: wrap(instance(v, secret=False), key=v["key"], agent=AgentClient(socket_path))
               for k, v in venues.items()}
    cases = [(label, sign_call(stock[c], e, params), sign_call(wrapped[c], e, params))
             for label, c, e, params in REQUESTS]
    # The same wrapped `sign` with the agent's reply canned: the adapter's and the client's own
    # Python work (ccxt's sign, reading its output back, JSON both ways, rebuilding ccxt's
    # output), everything but the socket and the agent.
    stubbed = []
    for _, c, e, params in REQUESTS:
        w = wrapped[c]
        sign_call(w, e, params)()
        reply = AgentClient(socket_path).call({
            "op": "sign", "key": venues[c]["key"],
            "exchange": _agent_id(c, e, w),
            "request": w._hsm_custody.last_request})
        canned = wrap(instance(venues[c], secret=False), key=venues[c]["key"],
                      agent=_canned_agent(reply))
        stubbed.append(sign_call(canned, e, params))

    # The client's agent round trip alone (Binance order, fields given, no ccxt): for reference
    # next to the wrap cost's agent part.
    bn = venues["binance"]
    direct = AgentClient(socket_path)

    def agent_only() -> Any:
        return direct.sign(bn["key"], "binance", {
            "method": "POST", "path": "/api/v3/order",
            "query": "symbol=BTCFDUSD&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.01000000"
                     f"&price=43250.10&timestamp={int(time.time() * 1000)}",
            "api_key": bn["apiKey"]})

    if args.profile:
        import cProfile
        import pstats
        label, _, call = cases[0]
        latency(call, 200)
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(n):
            call()
        prof.disable()
        print(f"cProfile of {n} wrapped `sign` calls, {label}:", file=sys.stderr)
        pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(25)
        return 0

    stub_med: List[List[float]] = [[] for _ in cases]
    stock_med: List[List[float]] = [[] for _ in cases]
    stock_p99: List[List[float]] = [[] for _ in cases]
    wrap_med: List[List[float]] = [[] for _ in cases]
    wrap_p99: List[List[float]] = [[] for _ in cases]
    agent_med: List[float] = []
    agent_p99: List[float] = []
    for r in range(rounds):
        print(f"round {r + 1}/{rounds}", file=sys.stderr)
        for i, (_, s, w) in enumerate(cases):
            m, p = latency(s, n)
            stock_med[i].append(m)
            stock_p99[i].append(p)
            m, p = latency(w, n)
            wrap_med[i].append(m)
            wrap_p99[i].append(p)
            stub_med[i].append(latency(stubbed[i], n)[0])
        m, p = latency(agent_only, n)
        agent_med.append(m)
        agent_p99.append(p)

    print(f"ccxt {ccxt.__version__}, hsm_custody {getattr(hsm_custody, '__version__', '?')}, "
          f"Python {platform.python_version()}, {os.cpu_count()} cores; SoftHSM2, agent "
          f"in the bench process on 1 thread, guard rails (policy, rate limit, audit log "
          f"with fsync = \"batch\"); `exchange.sign(...)` per call, {rounds} rounds of {n} "
          f"calls per cell, median of the rounds [min–max]. Round trips are assumptions, "
          f"not measurements: {ROUND_TRIPS_MS[0]:.0f} ms (same region), "
          f"{ROUND_TRIPS_MS[1]:.0f} ms (cross-region).\n")
    rt = ROUND_TRIPS_MS
    print(f"| request | stock ccxt µs (p50) | p99 | wrapped µs (p50) | p99 | wrap cost µs "
          f"(p50, paired) | of a {rt[0]:.0f} ms round trip | of a {rt[1]:.0f} ms round trip "
          f"| of which Python (agent stubbed) µs |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for i, (label, _, _) in enumerate(cases):
        added = [w - s for w, s in zip(wrap_med[i], stock_med[i])]
        python = [w - s for w, s in zip(stub_med[i], stock_med[i])]
        frac = [[a / (t * 1000.0) * 100.0 for a in added] for t in rt]
        print(f"| {label} | {cell(stock_med[i])} | {cell(stock_p99[i])} | {cell(wrap_med[i])} "
              f"| {cell(wrap_p99[i])} | {cell(added, '{:+.1f}')} "
              f"| {cell(frac[0], '{:.2f}')} % | {cell(frac[1], '{:.2f}')} % "
              f"| {cell(python, '{:+.1f}')} |")
    print(f"| `AgentClient.sign` alone (Binance order, fields given) | – | – "
          f"| {cell(agent_med)} | {cell(agent_p99)} | – | – | – | – |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
