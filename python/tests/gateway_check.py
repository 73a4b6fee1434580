#!/usr/bin/env python3
"""Stock ccxt through the hsm-custody gateway (issue 28; docs/gateway.md).

For every exchange case of ``oracle.py``, the same request is made twice at the same frozen
time: by stock ccxt holding the real secret, sent straight to the stand-in exchange (TLS, the
exchange's host name), and by stock ccxt holding only the placeholder secret, with its URLs
pointed at the gateway (``hsm_custody.gateway.ccxt_config``), which re-signs it in the token.
The stand-in verifies each signature with its server-side model and echoes what it received;
both echoes must be verified and identical (method, path, query, body, headers).

    gateway_check.py plan                          # TSV: route (host[/prefix]), exchange, key, api key,
                                                   #      passphrase, secret, b64 (test values)
    gateway_check.py run GATEWAY STANDIN CA_FILE   # compare; exit 1 when anything differs

Driven by ``tests/integration/gateway.rs`` (the Rust test ``gateway::ccxt_python_...``).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import http.client
import json
import os
import socket
import ssl
import sys
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracle  # noqa: E402

EXTRA = dict(oracle.EXTRA_KEYS)

#: Coinbase Advanced (ccxt ``coinbase`` with a CDP key: an EdDSA JWT, ccxt's choice for a
#: base64 secret ending in ``=``). Not one of the oracle's venues: the oracle compares ccxt's
#: signature with the crate's byte for byte, and the JWTs differ by design (below).
COINBASE_ADVANCED = oracle.Venue("coinbase", "coinbase-advanced", (
    oracle.Case("GET brokerage/accounts", "v3_private_get_brokerage_accounts", {"limit": "10"}),
    oracle.Case("POST brokerage/orders", "v3_private_post_brokerage_orders", {
        "client_order_id": "c1", "product_id": "BTC-USD", "side": "BUY",
        "order_configuration": {"limit_limit_gtc": {"base_size": "0.001",
                                                    "limit_price": "30000"}}}),
), b64_secret=True, api_key="organizations/org-0123/apiKeys/key-4567")

VENUES = oracle.VENUES + (COINBASE_ADVANCED,)

#: Exchanges whose whole ``Authorization`` header (a JWT) is the crate's: the bot's JWT (ccxt's
#: claims, its placeholder key) is replaced, not re-signed, so the two requests' JWTs differ
#: in their claims (ccxt: CDP v2 ``uris``, ``aud``, ``iat``, two minutes; the crate: ``uri``,
#: one minute) and their nonce. Compared instead: the method, host and path each JWT names and
#: the key name; the gateway's JWT is verified by the stand-in's model. The direct one is not
#: required to verify: the model reads the crate's ``uri`` claim, not ccxt's ``uris``.
JWT_EXCHANGES = ("coinbase-advanced",)


def secret_of(venue: oracle.Venue, key: str) -> str:
    """The test secret of ``key``: the oracle's, or a base64 Ed25519 seed (32 bytes) for
    Coinbase Advanced."""
    if venue.agent_id == "coinbase-advanced":
        digest = hashlib.sha256(b"hsm-custody gateway check " + key.encode()).digest()
        return base64.b64encode(digest).decode()
    return oracle._secret(key, venue.b64_secret)

#: Routes that serve part of a host (crate exchange id -> path prefix): MEXC's contract API
#: shares ``api.mexc.com`` with its spot API (ccxt ``urls["api"]["contract"]["private"]``).
PATH_PREFIX = {"mexc-futures": "/api/v1/private"}


def route_spec(host: str, exchange: str) -> str:
    """The route of a case: its host, and the path prefix of a route that serves part of it."""
    return host + PATH_PREFIX.get(exchange, "")


def route_name(spec: str) -> str:
    """The Rust test names each route after its spec, ``/`` written ``.``."""
    return spec.replace("/", ".")


def cases() -> List[Tuple[oracle.Venue, oracle.Case, str, str]]:
    """(venue, case, key name, crate exchange id) for every case whose route (host, and path
    prefix) no earlier venue claimed for another key (a route is one key)."""
    out = []
    owner: Dict[str, str] = {}
    for venue in VENUES:
        for case in venue.cases:
            key = case.key or venue.key
            exchange = EXTRA.get(key, venue.agent_id)
            host = route_spec(host_of(venue, case, key), exchange)
            if owner.setdefault(host, key) != key:
                continue
            out.append((venue, case, key, exchange))
    return out


def host_of(venue: oracle.Venue, case: oracle.Case, key: str) -> str:
    oracle._Clock.refreeze()
    built = oracle.build(oracle.instance(venue, secret_of(venue, key)), case)
    return urlsplit(built["url"]).netloc.lower()


def plan() -> int:
    seen = set()
    for venue, case, key, exchange in cases():
        host = route_spec(host_of(venue, case, key), exchange)
        if host in seen:
            continue
        seen.add(host)
        print("\t".join([host, exchange, key, venue.api_key, venue.password or "",
                         secret_of(venue, key),
                         "b64" if venue.b64_secret else "-"]))
    return 0


def send_direct(built: Dict[str, Any], standin: str, ca: str) -> Dict[str, Any]:
    """Sends ccxt's signed request to the stand-in as if to the exchange (SNI and Host the
    exchange's), returns the stand-in's echo."""
    url = urlsplit(built["url"])
    ip, port = standin.rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=ca)
    conn = http.client.HTTPSConnection(url.hostname, int(port), context=ctx, timeout=10)
    conn.sock = ctx.wrap_socket(socket.create_connection((ip, int(port)), timeout=10),
                                server_hostname=url.hostname)
    target = url.path + ("?" + url.query if url.query or "?" in built["url"] else "")
    body = built["body"]
    conn.request(built["method"], target, body=body.encode() if isinstance(body, str) else body,
                 headers={"Host": url.hostname, **dict(built["headers"] or [])})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return dict(json.loads(data))


def through_gateway(venue: oracle.Venue, case: oracle.Case, gateway: str,
                    routes: Dict[str, str]) -> Dict[str, Any]:
    import ccxt
    from hsm_custody.gateway import ccxt_config

    config: Dict[str, Any] = {"apiKey": venue.api_key, "enableRateLimit": False}
    if venue.password is not None:
        config["password"] = venue.password
    config.update(ccxt_config(venue.ccxt_id, gateway, routes))
    ex = oracle.freeze(getattr(ccxt, venue.ccxt_id)(config))
    try:
        return dict(getattr(ex, case.endpoint)(copy.deepcopy(case.params)))
    except ccxt.ExchangeError as e:
        # The stand-in's echo is not what this exchange answers on success (OKX's `code` "0",
        # Bybit's `retCode` ...), so ccxt raises after the round trip, quoting the reply.
        text = str(e)
        at = text.find('{"body"')
        if at < 0:
            raise
        return dict(json.JSONDecoder().raw_decode(text[at:])[0])


#: Headers ccxt's HTTP layer adds after ``sign`` (so absent from the direct request built from
#: ``sign``'s output): not authentication. Gate's channel id; Coinbase's ``CB-VERSION``, one of
#: the exchange's default ``headers``.
ADDED_BY_FETCH = ("x-gate-channel-id", "cb-version")


def jwt_names(echo: Dict[str, Any]) -> Tuple[Any, Any]:
    """(the ``METHOD host/path`` a bearer JWT names, its key name): ``uri``, or ccxt's
    one-element ``uris``."""
    token = str((echo.get("headers") or {}).get("authorization", "")).removeprefix("Bearer ")
    parts = token.split(".")
    if len(parts) != 3:
        return None, None
    claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    uris = claims.get("uris") or [claims.get("uri")]
    return (uris[0] if len(uris) == 1 else uris), claims.get("sub")


def comparable(echo: Dict[str, Any], exchange: str = "") -> Dict[str, Any]:
    out = {k: echo.get(k) for k in ("method", "path", "query", "body", "headers")}
    out["headers"] = {k: v for k, v in (out["headers"] or {}).items() if k not in ADDED_BY_FETCH}
    if exchange in JWT_EXCHANGES:
        out["headers"].pop("authorization", None)
        out["jwt"] = jwt_names(echo)
    return out


def run(gateway: str, standin: str, ca: str) -> int:
    import ccxt

    routes: Dict[str, str] = {}
    for venue, case, key, exchange in cases():
        spec = route_spec(host_of(venue, case, key), exchange)
        routes[spec] = route_name(spec)
    failed = False
    rows = []
    for venue, case, key, exchange in cases():
        secret = secret_of(venue, key)
        oracle._Clock.refreeze()
        stock = oracle.build(oracle.instance(venue, secret), case)
        try:
            direct = send_direct(stock, standin, ca)
            via = through_gateway(venue, case, gateway, routes)
        except Exception as e:  # noqa: BLE001 - reported in the table
            failed = True
            rows.append((venue.ccxt_id, case.label, f"**error** {type(e).__name__}: {e}"))
            continue
        problems = []
        if not direct.get("verified") and exchange not in JWT_EXCHANGES:
            problems.append("direct not verified")
        if not via.get("verified"):
            problems.append("gateway not verified")
        a, b = comparable(direct, exchange), comparable(via, exchange)
        if a != b:
            diff = [k for k in a if a[k] != b.get(k)]
            problems.append("differs in " + ",".join(diff))
            print(f"--- {venue.ccxt_id} {case.label}\n  direct:  {a}\n  gateway: {b}",
                  file=sys.stderr)
        failed = failed or bool(problems) and not case.why
        same = ("identical but the JWT (same method, host, path and key), verified"
                if exchange in JWT_EXCHANGES else "identical, verified")
        rows.append((venue.ccxt_id, case.label, "; ".join(problems) or same))
    print(f"ccxt {ccxt.__version__} through the gateway, clock frozen per request\n")
    print("| ccxt id | request | result |\n|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} |")
    # A withdrawal: refused by the key's policy in the gateway, never sent.
    venue = oracle.VENUES[0]
    from hsm_custody.gateway import ccxt_config
    config: Dict[str, Any] = {"apiKey": venue.api_key, "enableRateLimit": False}
    config.update(ccxt_config("binance", gateway, routes))
    ex = oracle.freeze(ccxt.binance(config))
    oracle._Clock.refreeze()
    try:
        ex.sapi_post_capital_withdraw_apply({"coin": "BTC", "address": "bc1qexample",
                                             "amount": "1"})
        print("\nwithdrawal: **sent**")
        failed = True
    except ccxt.BaseError as e:
        ok = "policy_denied" in str(e)
        print(f"\nwithdrawal: refused ({'policy_denied' if ok else e})")
        failed = failed or not ok
    # Coinbase Advanced: a v2 withdrawal, refused the same way.
    config = {"apiKey": COINBASE_ADVANCED.api_key, "enableRateLimit": False}
    config.update(ccxt_config("coinbase", gateway, routes))
    ex = oracle.freeze(ccxt.coinbase(config))
    oracle._Clock.refreeze()
    try:
        ex.v2_private_post_accounts_account_id_withdrawals({
            "account_id": "2bbf394c-193b-5b2a-9155-3b4732659ede", "amount": "1",
            "currency": "BTC"})
        print("coinbase withdrawal: **sent**")
        failed = True
    except ccxt.BaseError as e:
        ok = "policy_denied" in str(e)
        print(f"coinbase withdrawal: refused ({'policy_denied' if ok else e})")
        failed = failed or not ok
    return 1 if failed else 0


def main(argv: List[str]) -> int:
    if argv[:1] == ["plan"]:
        return plan()
    if argv[:1] == ["run"] and len(argv) == 4:
        return run(argv[1], argv[2], argv[3])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
