//! The unsigned request a signer takes and the signed request it gives back.

use std::borrow::Cow;
use std::fmt;

use crate::error::{Error, Result};

/// An unsigned exchange request: what to send, plus the exchange's time and nonce inputs.
///
/// Every field is optional and used verbatim (only `method` is upper-cased); an absent time or
/// nonce input is taken from the signer's clock or nonce source when the exchange needs one.
/// Each exchange's file documents how it reads the fields.
///
/// ```
/// use hsm_custody::exchanges::Request;
///
/// let req = Request::post("/api/v3/order")
///     .query("symbol=LTCBTC&side=BUY")
///     .timestamp("1499827319559")
///     .api_key("vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A");
/// assert_eq!(req.method.as_deref(), Some("POST"));
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Request {
    /// HTTP method (`GET`, `POST` ...).
    pub method: Option<String>,
    /// URL path as sent (`/api/v3/order`).
    pub path: Option<String>,
    /// Query string as sent, without the leading `?`.
    pub query: Option<String>,
    /// Body as sent (form or JSON text).
    pub body: Option<String>,
    /// The exchange's timestamp input, in the exchange's own unit and format.
    pub timestamp: Option<String>,
    /// The exchange's nonce input.
    pub nonce: Option<String>,
    /// Expiry (BitMEX `api-expires`, Unix seconds).
    pub expires: Option<String>,
    /// The public API key (sent in a header, and signed by some exchanges).
    pub api_key: Option<String>,
    /// Receive window (Binance `recvWindow`, Bybit `X-BAPI-RECV-WINDOW` ...).
    pub recv_window: Option<String>,
    /// The API passphrase (OKX, Coinbase, Bitget, KuCoin).
    pub passphrase: Option<String>,
    /// Host, for the exchanges that sign it (HTX, Bitstamp); each has a default.
    pub host: Option<String>,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The passphrase is a credential and the body may be private: neither is printed.
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("query", &self.query)
            .field(
                "body",
                &self.body.as_ref().map(|b| format!("[{} bytes]", b.len())),
            )
            .field("timestamp", &self.timestamp)
            .field("nonce", &self.nonce)
            .field("expires", &self.expires)
            .field("api_key", &self.api_key)
            .field("recv_window", &self.recv_window)
            .field(
                "passphrase",
                &self.passphrase.as_ref().map(|_| "[REDACTED]"),
            )
            .field("host", &self.host)
            .finish()
    }
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, value: impl Into<String>) -> Self {
                self.$name = Some(value.into());
                self
            }
        )*
    };
}

impl Request {
    /// A request with `method` (upper-cased) and `path`.
    pub fn new(method: &str, path: impl Into<String>) -> Self {
        Request {
            method: Some(method.to_ascii_uppercase()),
            path: Some(path.into()),
            ..Request::default()
        }
    }

    /// A `GET` request.
    pub fn get(path: impl Into<String>) -> Self {
        Request::new("GET", path)
    }

    /// A `POST` request.
    pub fn post(path: impl Into<String>) -> Self {
        Request::new("POST", path)
    }

    /// A `DELETE` request.
    pub fn delete(path: impl Into<String>) -> Self {
        Request::new("DELETE", path)
    }

    /// Sets the method (upper-cased).
    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_ascii_uppercase());
        self
    }

    setters! {
        /// Sets the path.
        path,
        /// Sets the query string (as sent, without `?`).
        query,
        /// Sets the body (as sent).
        body,
        /// Sets the timestamp input.
        timestamp,
        /// Sets the nonce input.
        nonce,
        /// Sets the expiry input.
        expires,
        /// Sets the public API key.
        api_key,
        /// Sets the receive window.
        recv_window,
        /// Sets the passphrase.
        passphrase,
        /// Sets the host.
        host,
    }

    /// Reads the `sign-request` JSON file format: an object with any of `method`, `path`,
    /// `query`, `body`, `timestamp`, `nonce`, `expires`, `api_key`, `recv_window`, `passphrase`,
    /// `host`. Strings are used verbatim, numbers and booleans as their JSON text, `null` as
    /// absent; other fields are ignored.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the text is not a JSON object or a field is an array/object.
    pub fn from_json(text: &str) -> Result<Request> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| Error::invalid(format!("request is not JSON (line {})", e.line())))?;
        Request::from_json_value(&value)
    }

    /// [`Request::from_json`] of a parsed value (the agent's frames are parsed once).
    pub(crate) fn from_json_value(value: &serde_json::Value) -> Result<Request> {
        let serde_json::Value::Object(map) = value else {
            return Err(Error::invalid("request must be a JSON object"));
        };
        let field = |name: &str| -> Result<Option<String>> {
            match map.get(name) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
                Some(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => {
                    Ok(Some(v.to_string()))
                }
                Some(_) => Err(Error::invalid(format!(
                    "request field `{name}` must be a string"
                ))),
            }
        };
        Ok(Request {
            method: field("method")?.map(|m| m.to_ascii_uppercase()),
            path: field("path")?,
            query: field("query")?,
            body: field("body")?,
            timestamp: field("timestamp")?,
            nonce: field("nonce")?,
            expires: field("expires")?,
            api_key: field("api_key")?,
            recv_window: field("recv_window")?,
            passphrase: field("passphrase")?,
            host: field("host")?,
        })
    }

    /// The method, `GET` when absent.
    pub(crate) fn method_or_get(&self) -> Cow<'_, str> {
        let method = self.method.as_deref().unwrap_or("GET");
        // The setters upper-case already: borrow, unless the field was set by hand.
        if method.bytes().any(|b| b.is_ascii_lowercase()) {
            Cow::Owned(method.to_ascii_uppercase())
        } else {
            Cow::Borrowed(method)
        }
    }

    pub(crate) fn path_or_empty(&self) -> &str {
        self.path.as_deref().unwrap_or("")
    }

    pub(crate) fn query_or_empty(&self) -> &str {
        self.query.as_deref().unwrap_or("").trim_start_matches('?')
    }

    pub(crate) fn body_or_empty(&self) -> &str {
        self.body.as_deref().unwrap_or("")
    }
}

/// A signed request: send `method` to `path?query` with `headers` and `body`.
///
/// What the signer only passes on from the [`Request`] (the method, the path, header values such
/// as the API key) is borrowed from it, not copied: `'r` is the request's lifetime. Use
/// [`SignedRequest::into_owned`] to keep one longer than its request (to move it to another
/// task, for example).
///
/// ```
/// use hsm_custody::exchanges::SignedRequest;
///
/// let path = String::from("/api/v3/order");
/// let signed = SignedRequest::new("POST", path.as_str(), "a=1", "", "sig")
///     .with_header("X-MBX-APIKEY", "key");
/// let kept: SignedRequest<'static> = signed.into_owned();
/// drop(path);
/// assert_eq!(kept.path, "/api/v3/order");
/// assert_eq!(kept.header("x-mbx-apikey"), Some("key"));
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SignedRequest<'r> {
    /// HTTP method.
    pub method: Cow<'r, str>,
    /// URL path.
    pub path: Cow<'r, str>,
    /// Final query string (signature included where the exchange wants it), without `?`:
    /// borrowed from the request when the exchange sends it unchanged.
    pub query: Cow<'r, str>,
    /// Final body (signature included where the exchange wants it): borrowed from the request
    /// when the exchange sends it unchanged.
    pub body: Cow<'r, str>,
    /// Headers to send, in a stable order. The names are the exchange's own constants (or
    /// owned, for names made at run time); values passed on from the request are borrowed from
    /// it, values the signer makes are owned.
    pub headers: Vec<(Cow<'static, str>, Cow<'r, str>)>,
    /// The signature exactly as the exchange documents it (before any URL-encoding).
    pub signature: String,
}

impl<'r> SignedRequest<'r> {
    /// A signed request with no headers yet.
    pub fn new(
        method: impl Into<Cow<'r, str>>,
        path: impl Into<Cow<'r, str>>,
        query: impl Into<Cow<'r, str>>,
        body: impl Into<Cow<'r, str>>,
        signature: impl Into<String>,
    ) -> Self {
        SignedRequest {
            method: method.into(),
            path: path.into(),
            query: query.into(),
            body: body.into(),
            // Room for the most any signer adds (OKX: 5), so that none grows it.
            headers: Vec::with_capacity(5),
            signature: signature.into(),
        }
    }

    /// Appends a header (`name`: a `&'static str`, or a `String` made at run time; `value`:
    /// borrowed from the request, or owned).
    pub fn with_header(
        mut self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<Cow<'r, str>>,
    ) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Appends a header when there is a value.
    pub fn with_header_opt(
        self,
        name: impl Into<Cow<'static, str>>,
        value: Option<impl Into<Cow<'r, str>>>,
    ) -> Self {
        match value {
            Some(v) => self.with_header(name, v),
            None => self,
        }
    }

    /// The same request owning all its parts, free of the [`Request`]'s lifetime.
    pub fn into_owned(self) -> SignedRequest<'static> {
        SignedRequest {
            method: Cow::Owned(self.method.into_owned()),
            path: Cow::Owned(self.path.into_owned()),
            query: Cow::Owned(self.query.into_owned()),
            body: Cow::Owned(self.body.into_owned()),
            headers: self
                .headers
                .into_iter()
                .map(|(name, value)| (name, Cow::Owned(value.into_owned())))
                .collect(),
            signature: self.signature,
        }
    }

    /// A header's value (name compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }

    /// `path?query`, or `path` when the query is empty.
    pub fn path_and_query(&self) -> String {
        super::encode::path_with_query(&self.path, &self.query)
    }

    /// The `sign-request` output: `{"signature", "headers": {...}, "query", "body"}`.
    pub fn to_json(&self) -> serde_json::Value {
        let headers: serde_json::Map<String, serde_json::Value> = self
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
            .collect();
        serde_json::json!({
            "signature": self.signature,
            "headers": headers,
            "query": self.query,
            "body": self.body,
        })
    }
}

impl fmt::Debug for SignedRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| {
                let secret = n.to_ascii_uppercase().contains("PASSPHRASE");
                (n.as_ref(), if secret { "[REDACTED]" } else { v.as_ref() })
            })
            .collect();
        f.debug_struct("SignedRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("query", &self.query)
            .field("body", &format!("[{} bytes]", self.body.len()))
            .field("headers", &headers)
            .field("signature", &self.signature)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_fields_are_read_verbatim() {
        let r = Request::from_json(
            r#"{"method":"post","path":"/x","timestamp":1499827319559,"body":"a=1","nonce":null,"extra":[1]}"#,
        )
        .unwrap();
        assert_eq!(r.method.as_deref(), Some("POST"));
        assert_eq!(r.timestamp.as_deref(), Some("1499827319559"));
        assert_eq!(r.body.as_deref(), Some("a=1"));
        assert_eq!(r.nonce, None);
        assert!(Request::from_json("[1]").is_err());
        assert!(Request::from_json(r#"{"path":{}}"#).is_err());
    }

    #[test]
    fn debug_hides_passphrase_and_body() {
        let r = Request::post("/x")
            .passphrase("hunter2")
            .body("secret-order");
        let s = format!("{r:?}");
        assert!(!s.contains("hunter2") && !s.contains("secret-order"), "{s}");
        let signed = SignedRequest::new("GET", "/", "", "b", "sig")
            .with_header("OK-ACCESS-PASSPHRASE", "hunter2");
        assert!(!format!("{signed:?}").contains("hunter2"));
    }
}
