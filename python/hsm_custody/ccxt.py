"""ccxt adapter: a ccxt exchange instance that signs through the hsm-custody agent.

>>> import ccxt, hsm_custody.ccxt
>>> exchange = hsm_custody.ccxt.wrap(ccxt.binance({"apiKey": "..."}), key="binance-main")

After :func:`wrap` the instance holds no secret: ``exchange.secret`` is :data:`PLACEHOLDER_SECRET`
(valid base64, so exchanges whose secret ccxt base64-decodes still build their requests; it
signs nothing anywhere). Everything else stays ccxt's: its own ``sign`` builds each request, with
``hmac`` replaced on the instance by a recorder that returns a dummy. The adapter then reads the
structured request back from ccxt's output (method, path, query, body, the timestamp or nonce in
the header/parameter/body where that exchange carries it, API key, passphrase, receive window),
drops the dummy signature, has the agent sign it (``sign`` op, with the crate's exchange id: the
agent rebuilds the string to sign itself, applies the key's policy and writes the audit log) and
returns ccxt's ``{url, method, body, headers}`` rebuilt from the agent's reply, keeping ccxt's
non-auth headers (``Content-Type``, broker tags ...). A bot never obtains a MAC over bytes of its
choosing, only signed requests the policy allows.

Exchanges the crate does not sign for: ``wrap(..., raw=True)`` routes each of ccxt's ``hmac``
calls to the agent's ``mac`` op instead, which the agent grants only to keys whose policy sets
``allow_raw = true`` and audits as raw (label ``ccxt:<id>``). Without ``raw=True``, wrapping such
an exchange raises :class:`UnsupportedExchange`.

ccxt's asynchronous classes (``ccxt.async_support``) build requests with the same synchronous
``sign``, so :func:`wrap` works for them too (the agent call blocks for one local socket round
trip, ~0.2 ms).

Errors are ccxt's: whatever the agent refuses, or a broken connection to it, is raised from a
wrapped instance as an exception that is both the ``hsm_custody`` class of its kind and the
ccxt class a ccxt bot already handles (:data:`CCXT_ERRORS`): ``PolicyDenied`` is a
``ccxt.PermissionDenied``, ``RateLimited`` a ``ccxt.RateLimitExceeded``, ``AgentUnavailable`` a
``ccxt.NetworkError``, and so on.

Exactness against stock ccxt is checked by ``python/tests/run_oracle.sh``
(``docs/ccxt-oracle.md``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple, Union, cast
from urllib.parse import unquote, urlsplit

from .client import AgentClient, SignedRequest
from .errors import AgentError

__all__ = ["wrap", "unwrap", "PLACEHOLDER_SECRET", "EXCHANGE_IDS", "UnsupportedExchange",
           "UnsupportedRequest", "agent_exchange_id", "CCXT_ERRORS", "as_ccxt_error"]

#: What ``exchange.secret`` holds after :func:`wrap`: base64 (ccxt decodes some exchanges'
#: secrets as base64) of a text saying where the real secret is. Useless if leaked.
PLACEHOLDER_SECRET = base64.b64encode(
    b"hsm-custody placeholder: the API secret is in the PKCS#11 token, not here").decode()
_PLACEHOLDER_FORMS = (PLACEHOLDER_SECRET.encode(), base64.b64decode(PLACEHOLDER_SECRET))
_DUMMY = "HSMCUSTODYUNSIGNED"


class UnsupportedExchange(ValueError):
    """The crate has no signer for this ccxt exchange and ``raw=True`` was not given."""


class UnsupportedRequest(ValueError):
    """ccxt built a request of a form the adapter cannot hand to the agent (for example an old
    API version of an exchange whose current one is supported)."""


# -- ccxt's output, read back ------------------------------------------------------------------
@dataclass
class _Built:
    """One ``sign`` output of ccxt, split into the parts the exchange tables read."""

    exchange: Any
    api: Any
    method: str
    url: str
    body: Optional[str]
    headers: Optional[Dict[str, str]]
    dummies: List[str]
    base: str = field(init=False)
    path: str = field(init=False)
    query: str = field(init=False)
    has_qmark: bool = field(init=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        self.base = f"{parts.scheme}://{parts.netloc}"
        self.path = parts.path
        self.query = parts.query
        self.has_qmark = "?" in self.url

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc

    def header(self, name: str) -> str:
        for k, v in (self.headers or {}).items():
            if k.lower() == name.lower():
                return str(v)
        raise UnsupportedRequest(f"ccxt {self.exchange.id}: no `{name}` header in the request")

    def has_header(self, name: str) -> bool:
        return any(k.lower() == name.lower() for k in (self.headers or {}))

    def request(self, **fields: Optional[str]) -> Dict[str, str]:
        """The agent request: method, path, URL query and body as ccxt built them, plus
        ``fields`` (``None`` values left out)."""
        out = {"method": self.method, "path": self.path, "query": self.query,
               "body": self.body or ""}
        out.update({k: v for k, v in fields.items() if v is not None})
        return out


def _param(query: str, name: str) -> Optional[str]:
    """The raw (still encoded) value of ``name`` in an ``a=b&c=d`` string."""
    for pair in query.split("&"):
        k, _, v = pair.partition("=")
        if k == name:
            return v
    return None


def _drop_param(query: str, name: str) -> str:
    """``query`` without its ``name=...`` pairs, the rest byte for byte."""
    return "&".join(p for p in query.split("&") if p and p.partition("=")[0] != name)


# -- exchange tables ---------------------------------------------------------------------------
Extract = Callable[[_Built], Dict[str, str]]


@dataclass(frozen=True)
class _Scheme:
    """How one crate exchange id reads a ccxt request."""

    agent_id: str
    extract: Extract
    #: presentation headers (:data:`_PRESENTATION`) this scheme signs: the agent's value wins
    signed_headers: Tuple[str, ...] = ()
    #: keep ccxt's HTTP body (it is not signed by this scheme)
    keep_body: bool = False
    #: rebuild the body from ccxt's with the agent's signature put in (JSON key order)
    json_body_field: Optional[str] = None


def _from_headers(**fields: str) -> Extract:
    """Request fields read from ccxt's headers (field name -> header name)."""
    def extract(b: _Built) -> Dict[str, str]:
        return b.request(**{f: b.header(h) for f, h in fields.items()})
    return extract


def _binance_like(key_header: str) -> Extract:
    """Binance/MEXC spot: ``timestamp`` is already in the query or body ccxt built, so the
    agent signs query‖body as sent; ccxt's ``signature`` parameter is dropped."""
    def extract(b: _Built) -> Dict[str, str]:
        return b.request(query=_drop_param(b.query, "signature"),
                         body=_drop_param(b.body, "signature") if b.body else "",
                         api_key=b.header(key_header))
    return extract


def _kraken(b: _Built) -> Dict[str, str]:
    body = b.body or ""
    if body.startswith("{"):
        nonce = str(json.loads(body).get("nonce"))
    else:
        nonce = unquote(_param(body, "nonce") or "") or None  # type: ignore[assignment]
    return b.request(nonce=nonce, api_key=b.header("API-Key"))


def _bybit(b: _Built) -> Dict[str, str]:
    if not b.has_header("X-BAPI-RECV-WINDOW") or b.has_header("X-BAPI-SIGN-TYPE"):
        raise UnsupportedRequest("ccxt bybit: only v5 requests are signed by the agent")
    return b.request(timestamp=b.header("X-BAPI-TIMESTAMP"), api_key=b.header("X-BAPI-API-KEY"),
                     recv_window=b.header("X-BAPI-RECV-WINDOW"))


def _kucoin(b: _Built) -> Dict[str, str]:
    if b.header("KC-API-KEY-VERSION") != "2":
        raise UnsupportedRequest("ccxt kucoin: the agent signs for API key version 2")
    if b.has_header("KC-API-PARTNER-SIGN") and _DUMMY in b.header("KC-API-PARTNER-SIGN"):
        raise UnsupportedRequest("ccxt kucoin: partner signature with the API secret")
    return b.request(timestamp=b.header("KC-API-TIMESTAMP"), api_key=b.header("KC-API-KEY"),
                     passphrase=b.exchange.password)


def _gemini(b: _Built) -> Dict[str, str]:
    payload = base64.b64decode(b.header("X-GEMINI-PAYLOAD")).decode()
    nonce = json.loads(payload).get("nonce")
    return b.request(body=payload, nonce=None if nonce is None else str(nonce),
                     api_key=b.header("X-GEMINI-APIKEY"))


def _bitfinex(b: _Built) -> Dict[str, str]:
    if not b.path.startswith("/v2/"):
        raise UnsupportedRequest("ccxt bitfinex: the agent signs v2 requests only")
    return b.request(nonce=b.header("bfx-nonce"), api_key=b.header("bfx-apikey"))


def _deribit(b: _Built) -> Dict[str, str]:
    scheme, _, params = b.header("Authorization").partition(" ")
    if scheme != "deri-hmac-sha256":
        raise UnsupportedRequest(f"ccxt deribit: unknown authorization scheme {scheme}")
    kv = dict(p.partition("=")[::2] for p in params.split(","))
    return b.request(api_key=kv.get("id"), timestamp=kv.get("ts"), nonce=kv.get("nonce"))


def _htx(b: _Built) -> Dict[str, str]:
    key, ts = _param(b.query, "AccessKeyId"), _param(b.query, "Timestamp")
    return b.request(query=_drop_param(b.query, "Signature"), host=b.host,
                     api_key=None if key is None else unquote(key),
                     timestamp=None if ts is None else unquote(ts))


_COMPACT_UTF8 = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _cryptocom(b: _Built) -> Dict[str, str]:
    rpc = json.loads(b.body or "{}")
    api_key = rpc.pop("api_key", None)
    rpc.pop("sig", None)
    # the nonce stays in the body as ccxt wrote it (a JSON string); the agent signs it from there
    return b.request(body=_COMPACT_UTF8(rpc),
                     api_key=api_key)


def _bitstamp(b: _Built) -> Dict[str, str]:
    auth = b.header("X-Auth")
    if not auth.startswith("BITSTAMP "):
        raise UnsupportedRequest("ccxt bitstamp: unexpected X-Auth header")
    return b.request(api_key=auth[len("BITSTAMP "):], nonce=b.header("X-Auth-Nonce"),
                     timestamp=b.header("X-Auth-Timestamp"), host=b.host)


_BINANCE = _Scheme("binance", _binance_like("X-MBX-APIKEY"))
_OKX = _Scheme("okx", _from_headers(timestamp="OK-ACCESS-TIMESTAMP", api_key="OK-ACCESS-KEY",
                                    passphrase="OK-ACCESS-PASSPHRASE"))
_KUCOIN = _Scheme("kucoin", _kucoin)
_MEXC_SPOT = _Scheme("mexc", _binance_like("X-MEXC-APIKEY"))
_MEXC_FUTURES = _Scheme("mexc-futures", _from_headers(timestamp="Request-Time", api_key="ApiKey"))

#: ccxt exchange id -> the crate's scheme (a function of ccxt's ``api`` argument where one ccxt
#: class covers several of the crate's ids). Kept in step with the crate's exchange registry (the
#: ``ccxt`` ids of each entry in ``src/exchanges/``): the Rust unit test
#: ``the_python_ccxt_table_matches_the_registry`` reads this table (one ``"ccxt-id": ...`` entry
#: per line at this indentation, ``_Scheme("crate-id", ...)`` directly or through a module-level
#: ``_NAME = _Scheme(...)``) and fails when the two differ.
_SCHEMES: Dict[str, Union[_Scheme, Callable[[Any], Optional[_Scheme]]]] = {
    "binance": _BINANCE,
    "binanceusdm": _Scheme("binance-usdm", _binance_like("X-MBX-APIKEY")),
    "binancecoinm": _Scheme("binance-coinm", _binance_like("X-MBX-APIKEY")),
    "kraken": _Scheme("kraken", _kraken),
    "coinbaseexchange": _Scheme("coinbase-exchange", _from_headers(
        timestamp="CB-ACCESS-TIMESTAMP", api_key="CB-ACCESS-KEY",
        passphrase="CB-ACCESS-PASSPHRASE")),
    "okx": _OKX,
    "myokx": _OKX,
    "bybit": _Scheme("bybit", _bybit),
    "bitget": _Scheme("bitget", _from_headers(timestamp="ACCESS-TIMESTAMP", api_key="ACCESS-KEY",
                                              passphrase="ACCESS-PASSPHRASE")),
    "kucoin": _KUCOIN,
    "kucoinfutures": _KUCOIN,
    "gemini": _Scheme("gemini", _gemini, keep_body=True),
    "bitfinex": _Scheme("bitfinex", _bitfinex),
    "gate": _Scheme("gate", _from_headers(timestamp="Timestamp", api_key="KEY")),
    "deribit": _Scheme("deribit", _deribit),
    "htx": _Scheme("htx", _htx),
    "cryptocom": _Scheme("cryptocom", _cryptocom, json_body_field="sig"),
    "bitstamp": _Scheme("bitstamp", _bitstamp, signed_headers=("Content-Type",)),
    "mexc": lambda api: {"spot": _MEXC_SPOT, "contract": _MEXC_FUTURES}.get(_api_section(api)),
}

#: The ccxt exchange ids :func:`wrap` signs with structured requests.
EXCHANGE_IDS: Tuple[str, ...] = tuple(sorted(_SCHEMES))


def _api_section(api: Any) -> str:
    return api[0] if isinstance(api, (list, tuple)) and api else str(api)


def _scheme(ccxt_id: str, api: Any) -> _Scheme:
    entry = _SCHEMES[ccxt_id]
    scheme = entry if isinstance(entry, _Scheme) else entry(api)
    if scheme is None:
        raise UnsupportedRequest(f"ccxt {ccxt_id}: the agent does not sign `{api}` endpoints")
    return scheme


def agent_exchange_id(ccxt_id: str, api: Any = None) -> Optional[str]:
    """The crate's exchange id for a ccxt exchange id (and ccxt ``api`` section for exchanges
    split by section, such as MEXC spot/contract), or ``None``."""
    if ccxt_id not in _SCHEMES:
        return None
    try:
        return _scheme(ccxt_id, api if api is not None else ["spot"]).agent_id
    except UnsupportedRequest:
        return None


# -- rebuilding ccxt's output from the agent's reply ----------------------------------------------
#: Headers that describe the request rather than authenticate it. The agent's reply carries the
#: crate's defaults for them (``Content-Type: application/json`` on an OKX GET, Kraken's
#: ``; charset=utf-8``, Bitget's ``locale``, Gemini's ``Content-Length: 0`` ...); ccxt's own
#: values are kept unless the scheme signs the header (:attr:`_Scheme.signed_headers`).
_PRESENTATION = frozenset({"content-type", "content-length", "cache-control", "locale", "accept",
                           "user-agent"})

#: What :func:`_rebuild` searches for a leftover dummy: the whole output as JSON (an encoder made
#: once; ``json.dumps(out, default=str)`` builds one per call).
_SWEEP = json.JSONEncoder(default=str).encode


def _rebuild(b: _Built, scheme: _Scheme, signed: SignedRequest) -> Dict[str, Any]:
    url = b.base + signed.path
    if signed.query or b.has_qmark:
        url += "?" + signed.query
    if scheme.keep_body:
        body = b.body
    elif scheme.json_body_field is not None:
        body = _json_body(b, scheme.json_body_field, signed)
    else:
        body = signed.body if (signed.body or b.body is not None) else None
    headers: Optional[Dict[str, str]] = None if b.headers is None else dict(b.headers)
    signed_presentation = {h.lower() for h in scheme.signed_headers}
    for name, value in signed.headers:
        if name.lower() in _PRESENTATION and name.lower() not in signed_presentation:
            continue  # ccxt's choice (or absence) stands: not part of what is signed
        existing = next((k for k in (headers or {}) if k.lower() == name.lower()), None)
        if existing is not None:
            headers[existing] = value  # type: ignore[index]
        else:
            headers = {} if headers is None else headers
            headers[name] = value
    out = {"url": url, "method": signed.method, "body": body, "headers": headers}
    text = _SWEEP(out)
    if _DUMMY in text:  # fail closed: never send a request that still carries ccxt's dummy
        raise UnsupportedRequest(f"ccxt {b.exchange.id}: the signed request still carries an "
                                 f"unsigned part (a keyed value this adapter does not know)")
    return out


def _json_body(b: _Built, name: str, signed: SignedRequest) -> str:
    """ccxt's JSON body (its key order) with the agent's ``name`` field put in; refuses when the
    agent's body differs in anything else."""
    ours = json.loads(signed.body)
    theirs = json.loads(b.body or "{}")
    theirs[name] = ours.get(name)
    if theirs != ours:
        fields = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
        raise UnsupportedRequest(f"ccxt {b.exchange.id}: the agent's body differs from ccxt's in "
                                 f"{', '.join(fields)}")
    text = b.body or ""
    for dummy in b.dummies:
        text = text.replace(dummy, str(ours[name]))
    return text


# -- errors: hsm_custody's and ccxt's at once -------------------------------------------------------
#: Every error kind of the agent protocol (and ``unavailable``: the agent could not be reached or
#: the connection broke) -> the name of the ccxt exception class it is raised as from a wrapped
#: instance. ``python/tests/oracle.py`` checks that this covers every kind ``hsm_custody.errors``
#: knows, and drives the refusals it can through a real agent.
CCXT_ERRORS: Dict[str, str] = {
    "bad_frame": "ExchangeError",
    "bad_request": "BadRequest",
    "unsupported_version": "NotSupported",
    "unknown_op": "NotSupported",
    "forbidden": "PermissionDenied",
    "rate_limited": "RateLimitExceeded",
    "policy_denied": "PermissionDenied",
    "invalid_input": "BadRequest",
    "key_not_found": "AuthenticationError",
    "wrong_exchange": "AuthenticationError",
    "key_unusable": "AuthenticationError",
    "audit_failed": "ExchangeNotAvailable",
    "busy": "ExchangeNotAvailable",
    "token": "ExchangeError",
    "unavailable": "NetworkError",
}
_DUAL: Dict[Tuple[type, str], type] = {}
_DUAL_LOCK = threading.Lock()


def as_ccxt_error(err: AgentError) -> AgentError:
    """``err`` as an instance of a class that derives from both ``type(err)`` (an
    ``hsm_custody`` error) and the ccxt class of its kind (:data:`CCXT_ERRORS`; an unknown kind
    is ``ccxt.ExchangeError``, as the protocol treats it like ``token``). Same kind, message,
    rule, key, ``retry_after_ms`` and hint."""
    import ccxt  # the bot's own ccxt: this module is importable without it

    kind = "unavailable" if type(err).__name__ == "AgentUnavailable" else err.kind
    ccxt_name = CCXT_ERRORS.get(kind, "ExchangeError")
    with _DUAL_LOCK:
        cls = _DUAL.get((type(err), ccxt_name))
        if cls is None:
            base = getattr(ccxt, ccxt_name)
            cls = type(type(err).__name__, (type(err), base), {
                "__module__": __name__,
                "__doc__": f"{type(err).__doc__} Also a ``ccxt.{ccxt_name}``.",
            })
            _DUAL[(type(err), ccxt_name)] = cls
    out = cast(AgentError, cls(err.kind, err.message, rule=err.rule, key=err.key,
                               retry_after_ms=err.retry_after_ms, hint=err.hint))
    return out


def _ccxt_errors(call: Callable[[], Any]) -> Any:
    """Runs an agent call; its ``AgentError`` is raised as :func:`as_ccxt_error` of it."""
    try:
        return call()
    except AgentError as e:
        raise as_ccxt_error(e) from e


# -- the wrapper -----------------------------------------------------------------------------------
_ALGS = {"sha256": "sha256", "sha384": "sha384", "sha512": "sha512"}


def _alg_name(algorithm: Any) -> str:
    name = algorithm if isinstance(algorithm, str) else algorithm().name
    return str(name).lower().replace("-", "")


def _is_placeholder(secret: Any) -> bool:
    if isinstance(secret, str):
        secret = secret.encode()
    return bytes(secret) in _PLACEHOLDER_FORMS


def _digest(mac: bytes, digest: str) -> Union[str, bytes]:
    if digest == "hex":
        return mac.hex()
    if digest == "base64":
        return base64.b64encode(mac).decode()
    return mac


class _Adapter:
    """State kept on a wrapped instance (``exchange._hsm_custody``)."""

    def __init__(self, exchange: Any, key: str, agent: AgentClient, raw: bool) -> None:
        self.exchange = exchange
        self.key = key
        self.agent = agent
        self.raw = raw
        self.structured = exchange.id in _SCHEMES
        self.original_sign = exchange.sign
        self.original_hmac = type(exchange).hmac
        self._local = threading.local()
        self.last_request: Optional[Dict[str, str]] = None

    # ccxt's `hmac(request, secret, algorithm, digest)`, per instance
    def hmac(self, request: Any, secret: Any, algorithm: Any = hashlib.sha256,
             digest: str = "hex") -> Union[str, bytes]:
        if not _is_placeholder(secret):
            # a key that is not the user's (e.g. a broker's public partner key in ccxt's code)
            return cast(Union[str, bytes], self.original_hmac(request, secret, algorithm, digest))
        if isinstance(request, str):
            request = request.encode()
        if self.structured:
            dummies: Optional[List[str]] = getattr(self._local, "dummies", None)
            if dummies is None:
                raise UnsupportedRequest(
                    f"ccxt {self.exchange.id}: an HMAC outside sign() (WebSocket login ...) is "
                    f"not signed by the agent in structured mode")
            dummy = f"{_DUMMY}{len(dummies)}X"
            dummies.append(dummy)
            return dummy.encode() if digest not in ("hex", "base64") else dummy
        alg = _ALGS.get(_alg_name(algorithm))
        if alg is None:
            raise UnsupportedRequest(f"ccxt {self.exchange.id}: HMAC-{_alg_name(algorithm)} is "
                                     f"not available from the agent")
        data = bytes(request)
        mac = _ccxt_errors(lambda: self.agent.mac(key=self.key, alg=alg, data=data,
                                                  label=f"ccxt:{self.exchange.id}"))
        return _digest(cast(bytes, mac), digest)

    def sign(self, path: Any, api: Any = "public", method: str = "GET",
             params: Any = None, *rest: Any) -> Dict[str, Any]:
        params = {} if params is None else params  # a dict, or a list for some batch endpoints
        if not self.structured:
            return cast(Dict[str, Any], self.original_sign(path, api, method, params, *rest))
        self._local.dummies = []
        try:
            out = self.original_sign(path, api, method, params, *rest)
            dummies = list(self._local.dummies)
        finally:
            self._local.dummies = None
        if not dummies:
            return cast(Dict[str, Any], out)  # public endpoint: nothing keyed
        built = _Built(self.exchange, api, str(out.get("method") or method), str(out["url"]),
                       out.get("body"), out.get("headers"), dummies)
        scheme = _scheme(self.exchange.id, api)
        request = scheme.extract(built)
        self.last_request = request
        signed = _ccxt_errors(lambda: self.agent.sign(key=self.key, exchange=scheme.agent_id,
                                                      request=request))
        return _rebuild(built, scheme, signed)


def _refuse(name: str, ccxt_id: str) -> Callable[..., Any]:
    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise UnsupportedRequest(f"ccxt {ccxt_id}: `{name}` needs a private key in process "
                                 f"memory; hsm-custody signs HMAC requests only")
    return refuse


def wrap(exchange: Any, key: str, agent: Union[AgentClient, str, None] = None,
         raw: bool = False) -> Any:
    """Makes ``exchange`` (a ccxt exchange instance, sync or async) sign through the agent with
    token key ``key`` and returns it. Its secret is replaced by :data:`PLACEHOLDER_SECRET`.

    ``agent``: an :class:`AgentClient`, a socket path, or ``None`` (``$HSM_CUSTODY_AGENT_SOCKET``,
    else ``/run/hsm-custody/agent.sock``). ``raw``: for exchanges the crate has no signer for,
    send ccxt's HMAC inputs to the agent's ``mac`` op (the key's policy must set
    ``allow_raw = true``); ignored for supported exchanges, which always sign structured."""
    ccxt_id = getattr(exchange, "id", None)
    if not isinstance(ccxt_id, str) or not callable(getattr(exchange, "sign", None)):
        raise TypeError("wrap() takes a ccxt exchange instance")
    if getattr(exchange, "_hsm_custody", None) is not None:
        raise ValueError(f"ccxt {ccxt_id} instance is already wrapped")
    if ccxt_id not in _SCHEMES and not raw:
        raise UnsupportedExchange(
            f"hsm-custody has no signer for ccxt exchange `{ccxt_id}` (supported: "
            f"{', '.join(EXCHANGE_IDS)}); pass raw=True to send its HMAC calls to the agent's "
            f"`mac` op, for a key whose policy sets allow_raw = true")
    client = agent if isinstance(agent, AgentClient) else AgentClient(agent)
    adapter = _Adapter(exchange, key, client, raw)
    exchange._hsm_custody = adapter
    exchange.secret = PLACEHOLDER_SECRET
    exchange.hmac = adapter.hmac
    exchange.sign = adapter.sign
    for name in ("rsa", "eddsa", "ecdsa", "jwt"):
        if hasattr(exchange, name):
            setattr(exchange, name, _refuse(name, ccxt_id))
    return exchange


def unwrap(exchange: Any) -> Any:
    """Undoes :func:`wrap`'s method patches (the secret stays the placeholder)."""
    adapter: Optional[_Adapter] = getattr(exchange, "_hsm_custody", None)
    if adapter is None:
        return exchange
    for name in ("hmac", "sign", "rsa", "eddsa", "ecdsa", "jwt"):
        exchange.__dict__.pop(name, None)
    exchange._hsm_custody = None
    return exchange
