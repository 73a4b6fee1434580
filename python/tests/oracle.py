#!/usr/bin/env python3
"""ccxt as the oracle for hsm-custody's exchange signers (issue 12; docs/ccxt-oracle.md).

For every exchange that both ccxt and the crate sign for, the same requests are built twice by
ccxt's own ``sign``: once by a stock instance holding the secret in memory, once by an instance
wrapped with ``hsm_custody.ccxt.wrap`` whose secret is in the token and whose signatures come from
the agent. Time and randomness are frozen on both (the instance's milliseconds/seconds/
microseconds/uuid methods), so the outputs (url, method, body, headers in order) must be
identical.

    oracle.py keys            # TSV: key name, crate exchange id ("-": none), "raw" or "-"
    oracle.py secret NAME     # the test secret of NAME on stdout (for `hsm-custody key import`)
    oracle.py run [-v]        # compare; prints a markdown table; exit 1 if anything differs

``run`` needs ``HSM_CUSTODY_AGENT_SOCKET`` pointing at an agent that holds the keys from
``keys`` (``python/tests/run_oracle.sh`` sets all of this up in a fresh SoftHSM2 token).
The secrets below are test values, used nowhere else.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import inspect
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

class _Clock:
    """The frozen clock both instances read: set to the real time before each case (the crate
    holds caller-given times to its own clock, within 5 s), then still for the whole case."""
    ms = 0

    @classmethod
    def refreeze(cls) -> int:
        import time
        cls.ms = int(time.time() * 1000)
        return cls.ms


FROZEN_UUID = "3b241101-e2bb-4255-8caf-4136c566a962"


def _secret(name: str, b64: bool = False) -> str:
    """A deterministic test secret for key ``name``."""
    digest = hashlib.sha512(b"hsm-custody ccxt oracle " + name.encode()).digest()
    return base64.b64encode(digest).decode() if b64 else digest.hex()[:48]


@dataclass(frozen=True)
class Case:
    label: str
    endpoint: str  # ccxt implicit-API method name, e.g. private_get_account
    params: Any = field(default_factory=dict)  # a dict, or a list where ccxt takes one
    key: Optional[str] = None  # key name when not the exchange's default key
    why: str = ""  # when the crate and ccxt are known to differ here: which is right, and why


@dataclass(frozen=True)
class Venue:
    ccxt_id: str
    agent_id: str
    cases: Tuple[Case, ...]
    b64_secret: bool = False
    api_key: str = "oracle-api-key-0123456789"
    password: Optional[str] = None
    uid: Optional[str] = None
    note: str = ""

    @property
    def key(self) -> str:
        return f"oracle-{self.ccxt_id}"


BITGET_RAW_QUERY = (
    "ccxt is right: Bitget signs the query string without percent-encoding (Bitget's HMAC "
    "sample `toQueryWithNoEncode`; ccxt#28888 `40009 sign signature error` for a non-ASCII "
    "symbol, fixed by ccxt#28890; JKorf/Bitget.Net#48 for `$`) while the URL carries it encoded; the crate signs the query "
    "as sent (src/exchanges/bitget.rs)")
GATE_RAW_QUERY = (
    "ccxt is right: Gate APIv4 signs the query string without URL encoding (ccxt "
    "`rawQueryString`; sieblyio/gateio-api#83 and ccxt#25570: `Signature mismatch` for commas "
    "in GET parameters signed encoded) while the URL carries it encoded; the crate signs the query as sent "
    "(src/exchanges/gate.rs)")

ORDER_BN = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
            "quantity": "0.001", "price": "30000"}
# COIN-M quantities are contracts.
ORDER_CM = {"symbol": "BTCUSD_PERP", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
            "quantity": "1", "price": "30000"}

VENUES: Tuple[Venue, ...] = (
    Venue("binance", "binance", (
        Case("GET account", "private_get_account", {"omitZeroBalances": "true"}),
        Case("GET openOrders", "private_get_openorders", {"symbol": "BTCUSDT"}),
        Case("POST order", "private_post_order", dict(ORDER_BN)),
        Case("DELETE order", "private_delete_order", {"symbol": "BTCUSDT", "orderId": "28"}),
    )),
    Venue("binanceusdm", "binance-usdm", (
        Case("GET balance", "fapiprivatev2_get_balance"),
        Case("POST order", "fapiprivate_post_order", dict(ORDER_BN)),
        Case("DELETE order", "fapiprivate_delete_order", {"symbol": "BTCUSDT", "orderId": "28"}),
        Case("POST batchOrders (JSON in a form field)", "fapiprivate_post_batchorders",
             {"batchOrders": [dict(ORDER_BN), dict(ORDER_BN, side="SELL", price="40000")]}),
    )),
    Venue("binancecoinm", "binance-coinm", (
        Case("GET balance", "dapiprivate_get_balance"),
        Case("POST order", "dapiprivate_post_order", dict(ORDER_CM)),
        Case("DELETE order", "dapiprivate_delete_order", {"symbol": "BTCUSD_PERP", "orderId": "28"}),
        Case("POST batchOrders (JSON in a form field)", "dapiprivate_post_batchorders",
             {"batchOrders": [dict(ORDER_CM), dict(ORDER_CM, side="SELL", price="40000")]}),
    )),
    Venue("kraken", "kraken", (
        Case("POST Balance", "private_post_balance"),
        Case("POST AddOrder", "private_post_addorder", {
            "pair": "XBTUSD", "type": "buy", "ordertype": "limit", "price": "30000",
            "volume": "0.01"}),
        Case("POST CancelOrder", "private_post_cancelorder", {"txid": "OUF4EM-FRGI2-MQMWZD"}),
        Case("POST AddOrderBatch (JSON body)", "private_post_addorderbatch", {
            "pair": "XBTUSD", "orders": [{"ordertype": "limit", "price": "30000", "type": "buy",
                                          "volume": "0.01"}]}),
    ), b64_secret=True),
    Venue("coinbaseexchange", "coinbase-exchange", (
        Case("GET accounts", "private_get_accounts"),
        Case("GET orders?status", "private_get_orders", {"status": "open",
                                                         "product_id": "BTC-USD"}),
        Case("POST orders", "private_post_orders", {
            "product_id": "BTC-USD", "side": "buy", "type": "limit", "price": "30000.00",
            "size": "0.01"}),
        Case("DELETE orders/{id}", "private_delete_orders_id", {"id": "d0c5340b-6d6c-49d9"}),
    ), b64_secret=True, password="oracle-passphrase"),
    Venue("okx", "okx", (
        Case("GET account/balance", "private_get_account_balance", {"ccy": "BTC,USDT"}),
        Case("POST trade/order", "private_post_trade_order", {
            "instId": "BTC-USDT", "tdMode": "cash", "side": "buy", "ordType": "limit",
            "sz": "0.01", "px": "30000"}),
        Case("POST trade/cancel-order", "private_post_trade_cancel_order", {
            "instId": "BTC-USDT", "ordId": "590908157585625111"}),
        Case("POST trade/batch-orders (JSON array)", "private_post_trade_batch_orders", [
            {"instId": "BTC-USDT", "tdMode": "cash", "side": "buy", "ordType": "limit",
             "sz": "0.01", "px": "30000"},
            {"instId": "ETH-USDT", "tdMode": "cash", "side": "sell", "ordType": "limit",
             "sz": "0.1", "px": "3000"}]),
    ), password="oracle-passphrase"),
    Venue("myokx", "okx", (
        Case("GET account/balance", "private_get_account_balance"),
        Case("POST trade/order", "private_post_trade_order", {
            "instId": "BTC-EUR", "tdMode": "cash", "side": "buy", "ordType": "limit",
            "sz": "0.01", "px": "30000", "clOrdId": "b15"}),
    ), password="oracle-passphrase"),
    Venue("bybit", "bybit", (
        Case("GET wallet-balance", "private_get_v5_account_wallet_balance",
             {"accountType": "UNIFIED"}),
        Case("GET order/realtime (no params)", "private_get_v5_order_realtime"),
        Case("POST order/create", "private_post_v5_order_create", {
            "category": "spot", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit",
            "qty": "0.01", "price": "30000"}),
        Case("POST order/cancel", "private_post_v5_order_cancel", {
            "category": "spot", "symbol": "BTCUSDT", "orderId": "1321003749386327552"}),
    )),
    Venue("bitget", "bitget", (
        Case("GET account/assets", "private_spot_get_v2_spot_account_assets", {"coin": "USDT"}),
        Case("POST place-order", "private_spot_post_v2_spot_trade_place_order", {
            "symbol": "BTCUSDT", "side": "buy", "orderType": "limit", "force": "gtc",
            "price": "30000", "size": "0.01"}),
        Case("POST cancel-order", "private_spot_post_v2_spot_trade_cancel_order", {
            "symbol": "BTCUSDT", "orderId": "1001"}),
        Case("GET unfilled-orders, non-ASCII symbol", "private_spot_get_v2_spot_trade_unfilled_orders",
             {"symbol": "\u5e01\u5b89\u4eba\u751fUSDT", "limit": "10"}, why=BITGET_RAW_QUERY),
    ), password="oracle-passphrase"),
    Venue("kucoin", "kucoin", (
        Case("GET accounts", "private_get_accounts", {"currency": "USDT", "type": "trade"}),
        Case("POST orders", "private_post_orders", {
            "clientOid": "5c52e11203aa677f33e493fb", "side": "buy", "symbol": "BTC-USDT",
            "type": "limit", "price": "30000", "size": "0.01"}),
        Case("DELETE orders/{orderId}", "private_delete_orders_orderid",
             {"orderId": "5bd6e9286d99522a52e458de"}),
        Case("DELETE orders?symbol", "private_delete_orders", {"symbol": "BTC-USDT",
                                                               "tradeType": "TRADE"}),
    ), password="oracle-passphrase"),
    Venue("kucoinfutures", "kucoin", (
        Case("GET account-overview", "futuresprivate_get_account_overview", {"currency": "USDT"}),
        Case("POST orders", "futuresprivate_post_orders", {
            "clientOid": "5c52e11203aa677f33e493fc", "side": "buy", "symbol": "XBTUSDTM",
            "type": "limit", "leverage": "3", "price": "30000", "size": 1}),
        Case("DELETE orders/{orderId}", "futuresprivate_delete_orders_orderid",
             {"orderId": "5cdfc138b21023a909e5ad55"}),
    ), password="oracle-passphrase"),
    Venue("gemini", "gemini", (
        Case("POST v1/balances", "private_post_v1_balances"),
        Case("POST v1/order/new", "private_post_v1_order_new", {
            "symbol": "btcusd", "amount": "0.01", "price": "30000", "side": "buy",
            "type": "exchange limit"}),
        Case("POST v1/order/cancel", "private_post_v1_order_cancel", {"order_id": 106817811}),
    ), api_key="account-oracle0123456789"),
    Venue("bitfinex", "bitfinex", (
        Case("POST auth/r/wallets", "private_post_auth_r_wallets"),
        Case("POST auth/w/order/submit", "private_post_auth_w_order_submit", {
            "type": "EXCHANGE LIMIT", "symbol": "tBTCUSD", "price": "30000",
            "amount": "0.01"}),
        Case("POST auth/w/order/cancel", "private_post_auth_w_order_cancel", {"id": 1747566428}),
    )),
    Venue("gate", "gate", (
        Case("GET spot/accounts", "private_spot_get_accounts", {"currency": "USDT"}),
        Case("GET spot/orders", "private_spot_get_orders", {"currency_pair": "BTC_USDT",
                                                            "status": "open"}),
        Case("POST spot/orders", "private_spot_post_orders", {
            "currency_pair": "BTC_USDT", "type": "limit", "account": "spot", "side": "buy",
            "amount": "0.01", "price": "30000"}),
        Case("DELETE spot/orders/{order_id}", "private_spot_delete_orders_order_id", {
            "order_id": "12345", "currency_pair": "BTC_USDT"}),
        Case("GET spot/batch_fee, comma in a value", "private_spot_get_batch_fee",
             {"currency_pairs": "BTC_USDT,ETH_USDT"}, why=GATE_RAW_QUERY),
    )),
    Venue("deribit", "deribit", (
        Case("GET get_account_summary", "private_get_get_account_summary", {"currency": "BTC"}),
        Case("GET buy", "private_get_buy", {"instrument_name": "BTC-PERPETUAL", "amount": 10,
                                            "type": "limit", "price": 30000}),
        Case("GET cancel", "private_get_cancel", {"order_id": "ETH-SLIS-12"}),
    )),
    Venue("htx", "htx", (
        Case("GET v1/account/accounts", "spot_private_get_v1_account_accounts"),
        Case("GET v1/order/openOrders", "spot_private_get_v1_order_openorders", {
            "account-id": "100009", "symbol": "btcusdt"}),
        Case("POST v1/order/orders/place", "spot_private_post_v1_order_orders_place", {
            "account-id": "100009", "symbol": "btcusdt", "type": "buy-limit",
            "amount": "0.01", "price": "30000"}),
        Case("POST .../submitcancel", "spot_private_post_v1_order_orders_order_id_submitcancel",
             {"order-id": "59378"}),
    )),
    Venue("cryptocom", "cryptocom", (
        Case("POST private/user-balance", "v1_private_post_private_user_balance"),
        Case("POST private/create-order", "v1_private_post_private_create_order", {
            "instrument_name": "BTC_USDT", "side": "BUY", "type": "LIMIT", "price": "30000",
            "quantity": "0.01"}),
        Case("POST private/cancel-order", "v1_private_post_private_cancel_order", {
            "instrument_name": "BTC_USDT", "order_id": "19848525"}),
        Case("POST private/create-order-list (nested)", "v1_private_post_private_create_order_list", {
            "contingency_type": "LIST", "order_list": [
                {"instrument_name": "BTC_USDT", "side": "BUY", "type": "LIMIT", "price": "30000",
                 "quantity": "0.01"},
                {"instrument_name": "ETH_USDT", "side": "SELL", "type": "LIMIT", "price": 3000.5,
                 "quantity": 1}]}),
    )),
    Venue("bitstamp", "bitstamp", (
        Case("POST account_balances (empty)", "private_post_account_balances"),
        Case("POST buy/{pair}", "private_post_buy_pair", {"pair": "btcusd", "amount": "0.01",
                                                          "price": "30000"}),
        Case("POST cancel_order", "private_post_cancel_order", {"id": "1453282316578816"}),
    )),
    Venue("mexc", "mexc", (
        Case("GET spot account", "spot_private_get_account"),
        Case("POST spot order", "spot_private_post_order", {
            "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "0.01",
            "price": "30000"}),
        Case("DELETE spot order", "spot_private_delete_order", {"symbol": "BTCUSDT",
                                                                "orderId": "C02__44"}),
        Case("GET contract account/assets", "contract_private_get_account_assets",
             key="oracle-mexc-futures"),
        Case("GET contract open_orders/{symbol}", "contract_private_get_order_list_open_orders_symbol",
             {"symbol": "BTC_USDT", "page_num": 1, "page_size": 20}, key="oracle-mexc-futures"),
        Case("POST contract order/submit", "contract_private_post_order_submit", {
            "symbol": "BTC_USDT", "price": 30000, "vol": 1, "side": 1, "type": 1,
            "openType": 1}, key="oracle-mexc-futures"),
    )),
)

#: ccxt exchanges the crate has no signer for, exercised through raw mode (agent `mac` op)
RAW_VENUES: Tuple[Venue, ...] = (
    Venue("bitso", "-", (
        Case("GET balance", "private_get_balance"),
        Case("POST orders", "private_post_orders", {"book": "btc_mxn", "side": "buy",
                                                    "type": "limit", "major": "0.01",
                                                    "price": "600000"}),
    )),
)

#: extra keys (a second crate id under one ccxt class)
EXTRA_KEYS: Tuple[Tuple[str, str], ...] = (("oracle-mexc-futures", "mexc-futures"),)


def key_table() -> List[Tuple[str, str, str, str]]:
    """(key name, crate exchange id or "-", "raw" or "-", secret)."""
    rows = [(v.key, v.agent_id, "-", _secret(v.key, v.b64_secret)) for v in VENUES]
    rows += [(name, ex, "-", _secret(name)) for name, ex in EXTRA_KEYS]
    rows += [(v.key, "-", "raw", _secret(v.key)) for v in RAW_VENUES]
    return rows


# -- running ----------------------------------------------------------------------------------------
def freeze(exchange: Any) -> Any:
    """Same clock and randomness on every instance."""
    exchange.milliseconds = lambda: _Clock.ms
    exchange.seconds = lambda: _Clock.ms // 1000
    exchange.microseconds = lambda: _Clock.ms * 1000
    exchange.uuid = lambda: FROZEN_UUID
    exchange.uuid16 = lambda length=16: "0123456789abcdef0123456789abcdef"[:length]
    exchange.uuid22 = lambda length=22: "0123456789abcdef0123456789abcdef"[:length]
    exchange.options["timeDifference"] = 0
    return exchange


def instance(venue: Venue, secret: Optional[str], asynch: bool = False) -> Any:
    import ccxt
    import ccxt.async_support
    config: Dict[str, Any] = {"apiKey": venue.api_key}
    if secret is not None:
        config["secret"] = secret
    if venue.password is not None:
        config["password"] = venue.password
    if venue.uid is not None:
        config["uid"] = venue.uid
    return freeze(getattr(ccxt.async_support if asynch else ccxt, venue.ccxt_id)(config))


def build(exchange: Any, case: Case) -> Dict[str, Any]:
    entry = inspect.getattr_static(exchange, case.endpoint)
    out = exchange.sign(entry.path, entry.api, entry.method, copy.deepcopy(case.params))
    headers = out.get("headers")
    return {"url": out.get("url"), "method": out.get("method"), "body": out.get("body"),
            "headers": None if headers is None else list(dict(headers).items())}


def differences(a: Dict[str, Any], b: Dict[str, Any]) -> List[str]:
    diffs = [k for k in ("url", "method", "body") if a[k] != b[k]]
    ha, hb = a["headers"] or [], b["headers"] or []
    if dict(ha) != dict(hb):
        names = sorted({k for k, v in ha if (k, v) not in hb} | {k for k, v in hb if (k, v) not in ha})
        diffs.append("headers " + ",".join(names))
    elif ha != hb:
        diffs.append("header order")
    return diffs


def run(verbose: bool) -> int:
    import ccxt
    from hsm_custody import AgentClient, AgentError
    from hsm_custody.ccxt import wrap

    agent = AgentClient()
    agent.ping()
    rows: List[Tuple[str, str, str, int, int, List[str]]] = []
    failed = False
    runs = [(v, False, False) for v in VENUES] + [(VENUES[0], False, True)]
    runs += [(v, True, False) for v in RAW_VENUES]
    for venue, raw, asynch in runs:
        total = same = 0
        notes: List[str] = []
        for case in venue.cases:
            total += 1
            secret = _secret(case.key or venue.key, venue.b64_secret)
            _Clock.refreeze()
            stock = build(instance(venue, secret), case)
            wrapped_ex = wrap(instance(venue, secret, asynch), key=case.key or venue.key,
                              agent=agent, raw=raw)
            try:
                wrapped = build(wrapped_ex, case)
            except AgentError as e:
                if raw and e.kind in ("unknown_op", "bad_request"):
                    notes.append(f"{case.label}: agent has no `mac` op ({e.kind})")
                    total -= 1
                    continue
                notes.append(f"{case.label}: agent error {e.kind}: {e}")
                continue
            except Exception as e:  # noqa: BLE001 - reported in the table
                notes.append(f"{case.label}: {type(e).__name__}: {e}")
                continue
            assert secret not in str(vars(wrapped_ex)), "the wrapped instance still holds the secret"
            diffs = differences(stock, wrapped)
            if diffs:
                notes.append(f"{case.label}: {'; '.join(diffs)}" +
                             (f" ({case.why})" if case.why else ""))
                if verbose:
                    print(f"--- {venue.ccxt_id} {case.label}\n  ccxt:    {stock}\n"
                          f"  wrapped: {wrapped}", file=sys.stderr)
            else:
                same += 1
        if total and same != total:
            failed = True
        mode = "raw `mac`" if raw else f"`{venue.agent_id}`" + (
            " + `mexc-futures`" if venue.ccxt_id == "mexc" else "")
        name = f"`{venue.ccxt_id}`" + (" (`ccxt.async_support`)" if asynch else "")
        rows.append((name, mode, venue.note, total, same, notes))

    checks = adapter_checks(agent)
    failed = failed or not all(ok for _, ok in checks)

    print(f"ccxt {ccxt.__version__}, clock frozen per request at the real time\n")
    print("| ccxt id | agent exchange | requests | identical | differences |")
    print("|---|---|---|---|---|")
    for ccxt_id, mode, note, total, same, notes in rows:
        verdict = "yes" if total and same == total else ("skipped" if not total else "**no**")
        text = "; ".join(notes + ([note] if note else [])) or "-"
        print(f"| {ccxt_id} | {mode} | {total} | {verdict} ({same}/{total}) | {text} |")
    print("\n| adapter check | result |\n|---|---|")
    for text, ok in checks:
        print(f"| {text} | {'yes' if ok else '**no**'} |")
    return 1 if failed else 0


def adapter_checks(agent: Any) -> List[Tuple[str, bool]]:
    """What the adapter refuses: unsupported exchanges without raw=True, withdrawals (the key's
    policy, in the agent), and the secret staying in the instance."""
    import ccxt
    from hsm_custody import PolicyDenied
    from hsm_custody.ccxt import (EXCHANGE_IDS, PLACEHOLDER_SECRET, UnsupportedExchange,
                                  agent_exchange_id, wrap)

    out: List[Tuple[str, bool]] = []
    # The adapter's table is checked against the crate's registry by a Rust unit test
    # (`the_python_ccxt_table_matches_the_registry`); here, every ccxt id it signs is compared.
    venues = {v.ccxt_id: v.agent_id for v in VENUES}
    out.append(("every ccxt id of `EXCHANGE_IDS` has a venue here, as the adapter's crate id",
                sorted(venues) == sorted(EXCHANGE_IDS)
                and all(agent_exchange_id(c) == a for c, a in venues.items())))
    try:
        wrap(ccxt.bitso({"apiKey": "k", "secret": "s"}), key="oracle-bitso", agent=agent)
        out.append(("`wrap(ccxt.bitso(...))` without `raw=True` raises UnsupportedExchange", False))
    except UnsupportedExchange:
        out.append(("`wrap(ccxt.bitso(...))` without `raw=True` raises UnsupportedExchange", True))
    venue = VENUES[0]
    ex = wrap(instance(venue, _secret(venue.key)), key=venue.key, agent=agent)
    out.append(("wrapped `exchange.secret` is the placeholder (base64, no secret)",
                ex.secret == PLACEHOLDER_SECRET and _secret(venue.key) not in str(vars(ex))))
    try:
        ex.sign("capital/withdraw/apply", ["sapi"], "POST",
                {"coin": "BTC", "address": "bc1qexample", "amount": "1"})
        out.append(("Binance `POST sapi/v1/capital/withdraw/apply` refused by the key's policy",
                    False))
    except PolicyDenied as e:
        out.append((f"Binance `POST sapi/v1/capital/withdraw/apply` refused by the key's policy "
                    f"(rule `{e.rule}`)", True))
    out += error_checks(agent)
    return out


def error_checks(agent: Any) -> List[Tuple[str, bool]]:
    """Errors from a wrapped instance are ccxt's and hsm_custody's at once: every protocol kind
    has its ccxt class, and the refusals a real agent makes here arrive as both."""
    import ccxt
    import ccxt.async_support
    import hsm_custody
    from hsm_custody.ccxt import CCXT_ERRORS, as_ccxt_error, wrap
    from hsm_custody.errors import _BY_KIND, from_reply

    out: List[Tuple[str, bool]] = []
    kinds = set(_BY_KIND) | {"unavailable"}
    out.append(("`CCXT_ERRORS` names a ccxt class for every protocol kind (and `unavailable`)",
                set(CCXT_ERRORS) == kinds
                and all(isinstance(getattr(ccxt, n, None), type) for n in CCXT_ERRORS.values())))
    ok = True
    for kind, cls in _BY_KIND.items():
        e = as_ccxt_error(from_reply({"kind": kind, "message": "m", "rule": "r", "key": "k",
                                      "retry_after_ms": 7, "hint": "h"}))
        ok = ok and isinstance(e, cls) and isinstance(e, getattr(ccxt, CCXT_ERRORS[kind])) \
            and isinstance(e, ccxt.BaseError) and isinstance(e, hsm_custody.AgentError) \
            and (e.kind, e.message, e.rule, e.key, e.retry_after_ms, e.hint) == \
            (kind, "m", "r", "k", 7, "h")
    unknown = as_ccxt_error(from_reply({"kind": "from-the-future", "message": "m"}))
    ok = ok and isinstance(unknown, hsm_custody.TokenError) \
        and isinstance(unknown, ccxt.ExchangeError)
    out.append(("each kind's error is its hsm_custody class and its ccxt class, attributes kept; "
                "an unknown kind is TokenError + ccxt.ExchangeError", ok))
    expected = {"policy_denied": ccxt.PermissionDenied, "rate_limited": ccxt.RateLimitExceeded,
                "forbidden": ccxt.PermissionDenied, "busy": ccxt.ExchangeNotAvailable}
    out.append(("PolicyDenied/Forbidden are ccxt.PermissionDenied, RateLimited is "
                "ccxt.RateLimitExceeded, Busy is ccxt.ExchangeNotAvailable",
                all(isinstance(as_ccxt_error(from_reply({"kind": k, "message": ""})), c)
                    for k, c in expected.items())))

    venue = VENUES[0]
    withdraw = ("capital/withdraw/apply", ["sapi"], "POST",
                {"coin": "BTC", "address": "bc1qexample", "amount": "1"})
    for asynch in (False, True):
        ex = wrap(instance(venue, _secret(venue.key), asynch), key=venue.key, agent=agent)
        label = "ccxt.async_support " if asynch else ""
        try:
            ex.sign(*withdraw)
            out.append((f"{label}withdrawal raises ccxt.PermissionDenied", False))
        except ccxt.PermissionDenied as e:
            out.append((f"{label}withdrawal (live agent) raises ccxt.PermissionDenied, also "
                        f"hsm_custody.PolicyDenied (rule `{e.rule}`)",
                        isinstance(e, hsm_custody.PolicyDenied)))
    # A key the agent does not allow this uid: forbidden, a ccxt.PermissionDenied.
    ex = wrap(instance(venue, _secret(venue.key)), key="oracle-not-allowed", agent=agent)
    try:
        ex.sign("order", ["private"], "POST", {"symbol": "BTCUSDT", "side": "BUY",
                                               "type": "MARKET", "quantity": "1"})
        out.append(("a key not in the allow-list raises ccxt.PermissionDenied", False))
    except ccxt.PermissionDenied as e:
        out.append(("a key not in the allow-list (live agent) raises ccxt.PermissionDenied, also "
                    "hsm_custody.Forbidden", isinstance(e, hsm_custody.Forbidden)))
    # No agent at the socket: ccxt.NetworkError, also hsm_custody.AgentUnavailable.
    ex = wrap(instance(venue, _secret(venue.key)), key=venue.key,
              agent="/nonexistent/hsm-custody/agent.sock")
    try:
        ex.sign("order", ["private"], "POST", {"symbol": "BTCUSDT", "side": "BUY",
                                               "type": "MARKET", "quantity": "1"})
        out.append(("an unreachable agent raises ccxt.NetworkError", False))
    except ccxt.NetworkError as e:
        out.append(("an unreachable agent raises ccxt.NetworkError, also "
                    "hsm_custody.AgentUnavailable", isinstance(e, hsm_custody.AgentUnavailable)))
    return out


def main(argv: Sequence[str]) -> int:
    if len(argv) >= 1 and argv[0] == "keys":
        for name, exchange, raw, _ in key_table():
            print(f"{name}\t{exchange}\t{raw}")
        return 0
    if len(argv) == 2 and argv[0] == "apikey":
        # The exchange API key recorded with the key (empty: none).
        for v in VENUES:
            if v.key == argv[1]:
                sys.stdout.write(v.api_key)
        for name, _ in EXTRA_KEYS:
            if name == argv[1]:
                # Used by the venue whose cases name it (one ccxt instance, one API key).
                for v in VENUES:
                    if any(c.key == name for c in v.cases):
                        sys.stdout.write(v.api_key)
                        break
        return 0
    if len(argv) == 2 and argv[0] == "passphrase":
        # The API passphrase recorded with the key (empty: none).
        for v in VENUES:
            if v.key == argv[1] and v.password is not None:
                sys.stdout.write(v.password)
        return 0
    if len(argv) == 2 and argv[0] == "secret":
        for name, _, _, secret in key_table():
            if name == argv[1]:
                sys.stdout.write(secret)
                return 0
        print(f"unknown key {argv[1]}", file=sys.stderr)
        return 2
    if len(argv) >= 1 and argv[0] == "run":
        return run("-v" in argv[1:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
