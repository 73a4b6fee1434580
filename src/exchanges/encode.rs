//! Small encoders shared by the signers: percent-encoding, query parsing, time formats.

use base64::Engine as _;
use sha2::Digest as _;

use crate::error::{Error, Result};

/// Percent-encodes `s` as RFC 3986 does: unreserved characters (`A-Z a-z 0-9 - . _ ~`) stay,
/// every other byte of the UTF-8 becomes `%XX` with uppercase hex.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
    out
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Joins `key=value` pairs with `&`, percent-encoding keys and values ([`percent_encode`]), in
/// the order given: the query or form body that Binance-style exchanges sign as sent.
pub fn urlencode_pairs<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                percent_encode(k.as_ref()),
                percent_encode(v.as_ref())
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Decodes `%XX` escapes (not `+`); invalid escapes stay as they are.
pub(crate) fn percent_decode(s: &str) -> String {
    String::from_utf8_lossy(&percent_decode_bytes(s)).into_owned()
}

/// Decodes `%XX` escapes (not `+`) into bytes, exactly (no UTF-8 replacement: a signer must
/// sign the bytes the server reconstructs); invalid escapes stay as they are.
pub(crate) fn percent_decode_bytes(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// Splits a query string into `(key, value)` pairs as written (no decoding).
pub(crate) fn split_query(q: &str) -> Vec<(&str, &str)> {
    q.trim_start_matches('?')
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect()
}

/// Whether a query or form body already carries parameter `name`.
pub(crate) fn has_param(q: &str, name: &str) -> bool {
    // As `split_query`, without collecting: this runs on every signature.
    q.trim_start_matches('?')
        .split('&')
        .any(|p| !p.is_empty() && p.split_once('=').map_or(p, |(k, _)| k) == name)
}

/// The value of parameter `name` in a query or form body, as written.
pub(crate) fn param<'a>(q: &'a str, name: &str) -> Option<&'a str> {
    split_query(q)
        .into_iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// `path` followed by `?query` when the query is not empty.
pub(crate) fn path_with_query(path: &str, query: &str) -> String {
    let query = query.trim_start_matches('?');
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    }
}

/// Lowercase hex of SHA-512.
pub(crate) fn sha512_hex(data: &[u8]) -> String {
    hex::encode(sha2::Sha512::digest(data))
}

/// SHA-256.
pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(data).into()
}

/// Standard base64.
pub(crate) fn base64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// `2020-12-08T09:08:57.715Z` for a time in milliseconds (OKX).
pub(crate) fn iso8601_millis(ms: u64) -> Result<String> {
    let t = datetime(ms)?;
    Ok(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    ))
}

/// `2017-05-11T15:19:30` (UTC, no zone) for a time in milliseconds (HTX).
pub(crate) fn iso8601_seconds(ms: u64) -> Result<String> {
    let t = datetime(ms)?;
    Ok(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    ))
}

fn datetime(ms: u64) -> Result<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|_| Error::invalid("timestamp out of range"))
}

/// A random lowercase UUIDv4 (Bitstamp nonces): from the OS random source, or, where there is
/// none, a hash of time, process and a counter (still unique, which is what a nonce needs).
pub(crate) fn uuid_v4() -> String {
    let mut bytes = [0u8; 16];
    if !fill_random(&mut bytes) {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let seed = format!(
            "{:?}-{}-{}",
            std::time::SystemTime::now(),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        bytes.copy_from_slice(&sha256(seed.as_bytes())[..16]);
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let h = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn fill_random(buf: &mut [u8]) -> bool {
    use std::io::Read as _;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_is_rfc3986_with_uppercase_hex() {
        assert_eq!(percent_encode("１"), "%EF%BC%91");
        assert_eq!(percent_encode("a b:c/~"), "a%20b%3Ac%2F~");
        assert_eq!(
            urlencode_pairs(&[("symbol", "１２３４５６"), ("side", "BUY")]),
            "symbol=%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94%EF%BC%95%EF%BC%96&side=BUY"
        );
    }

    #[test]
    fn decoding_undoes_encoding() {
        for s in ["2017-05-11T15:19:30", "a b+c", "１２３", "%zz"] {
            assert_eq!(percent_decode(&percent_encode(s)), s);
        }
        assert_eq!(percent_decode("%3a%"), ":%");
    }

    #[test]
    fn times_format() {
        assert_eq!(
            iso8601_millis(1_607_418_537_715).unwrap(),
            "2020-12-08T09:08:57.715Z"
        );
        assert_eq!(
            iso8601_seconds(1_494_515_970_000).unwrap(),
            "2017-05-11T15:19:30"
        );
    }

    #[test]
    fn uuids_look_like_v4() {
        let u = uuid_v4();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(u, uuid_v4());
    }

    #[test]
    fn queries_split() {
        assert_eq!(
            split_query("?a=1&b&c=x=y"),
            vec![("a", "1"), ("b", ""), ("c", "x=y")]
        );
        assert!(has_param("a=1&timestamp=2", "timestamp"));
        assert_eq!(param("nonce=5&x=1", "nonce"), Some("5"));
    }
}
