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
    params(q).collect()
}

/// The `(key, value)` pairs of a query string as written (no decoding), without collecting:
/// a byte scan, because `str::split` sets up a searcher per piece and this runs on every
/// signature.
fn params(q: &str) -> impl Iterator<Item = (&str, &str)> {
    let mut rest = q.trim_start_matches('?');
    std::iter::from_fn(move || loop {
        if rest.is_empty() {
            return None;
        }
        // `&` and `=` are ASCII: the indices below are char boundaries.
        let end = rest.bytes().position(|b| b == b'&').unwrap_or(rest.len());
        let piece = &rest[..end];
        rest = rest.get(end + 1..).unwrap_or("");
        if piece.is_empty() {
            continue;
        }
        return Some(match piece.bytes().position(|b| b == b'=') {
            Some(eq) => (&piece[..eq], &piece[eq + 1..]),
            None => (piece, ""),
        });
    })
}

/// Whether a query or form body already carries parameter `name`.
#[inline]
pub(crate) fn has_param(q: &str, name: &str) -> bool {
    // What `params(q).any(..)` answers (the unit test checks both agree), as one plain loop
    // (`next_amp` skips to each `&` eight bytes a step): it runs on every Binance-style
    // signature, between two token calls, where what costs is the code and data it pulls into
    // the CPU's caches (and evicts the token's), not its few hundred instructions. A
    // substring-search prefilter or an iterator chain is several times the code
    // (docs/fast-path.md, "Cache footprint").
    let (q, name) = (q.as_bytes(), name.as_bytes());
    let mut at = 0;
    while at < q.len() && q[at] == b'?' {
        at += 1;
    }
    loop {
        // `at` starts a parameter: it holds `name` if `name` follows, then `=`, `&` or the end
        // (and the parameter is not empty).
        let rest = &q[at..];
        if rest.first().is_some_and(|&b| b != b'&')
            && rest.starts_with(name)
            && matches!(rest.get(name.len()), None | Some(b'=' | b'&'))
        {
            return true;
        }
        at = next_amp(q, at);
        if at >= q.len() {
            return false;
        }
        at += 1;
    }
}

/// The index of the first `&` in `q` at or after `at`, else `q.len()`: eight bytes a step (a
/// byte of `w ^ b"&&&&&&&&"` is zero where `w` holds `&`; the lowest flagged byte is exact).
fn next_amp(q: &[u8], mut at: usize) -> usize {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const AMPS: u64 = u64::from_ne_bytes([b'&'; 8]);
    while let Some(word) = q.get(at..at + 8) {
        let x = u64::from_le_bytes(word.try_into().expect("8 bytes")) ^ AMPS;
        let zero = x.wrapping_sub(ONES) & !x & HIGHS;
        if zero != 0 {
            return at + (zero.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    while at < q.len() && q[at] != b'&' {
        at += 1;
    }
    at
}

/// The value of parameter `name` in a query or form body, as written.
pub(crate) fn param<'a>(q: &'a str, name: &str) -> Option<&'a str> {
    params(q).find(|(k, _)| *k == name).map(|(_, v)| v)
}

/// Appends `n` in decimal (what `write!(out, "{n}")` gives, without the formatting machinery).
pub(crate) fn push_u64(out: &mut String, n: u64) {
    // `itoa` writes two digits per step from a table, in a few cache lines of code: this runs
    // on every timestamped request, between two token calls (docs/fast-path.md).
    out.push_str(itoa::Buffer::new().format(n));
}

/// Appends `n` zero-padded to `width` (at most 4) digits; `n` must fit.
fn push_padded(out: &mut String, n: u64, width: usize) {
    let mut buf = [b'0'; 4];
    let mut n = n;
    for d in buf[..width].iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.push_str(std::str::from_utf8(&buf[..width]).expect("decimal digits are ASCII"));
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
    let mut out = String::with_capacity(24);
    push_datetime(&mut out, ms)?;
    out.push('.');
    push_padded(&mut out, ms % 1000, 3);
    out.push('Z');
    Ok(out)
}

/// `2017-05-11T15:19:30` (UTC, no zone) for a time in milliseconds (HTX).
pub(crate) fn iso8601_seconds(ms: u64) -> Result<String> {
    let mut out = String::with_capacity(19);
    push_datetime(&mut out, ms)?;
    Ok(out)
}

/// The last millisecond of year 9999, the end of four-digit years.
const MAX_MS: u64 = 253_402_300_799_999;

/// Appends `YYYY-MM-DDTHH:MM:SS` (UTC) for a time in milliseconds since the Unix epoch: the
/// proleptic Gregorian calendar by day arithmetic (H. Hinnant's `civil_from_days`) rather than a
/// date library, because OKX requests format a timestamp on every signature.
fn push_datetime(out: &mut String, ms: u64) -> Result<()> {
    if ms > MAX_MS {
        return Err(Error::invalid("timestamp out of range"));
    }
    let secs = ms / 1000;
    let (days, day_secs) = (secs / 86_400, secs % 86_400);
    // Days counted from 0000-03-01, in 400-year eras of 146,097 days.
    let z = days + 719_468;
    let (era, doe) = (z / 146_097, z % 146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    push_padded(out, year, 4);
    out.push('-');
    push_padded(out, month, 2);
    out.push('-');
    push_padded(out, day, 2);
    out.push('T');
    push_padded(out, day_secs / 3600, 2);
    out.push(':');
    push_padded(out, day_secs / 60 % 60, 2);
    out.push(':');
    push_padded(out, day_secs % 60, 2);
    Ok(())
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
        assert!(has_param("?timestamp&a=1", "timestamp"));
        assert!(!has_param(
            "timestamps=1&xtimestamp=2&a=timestamp",
            "timestamp"
        ));
        assert!(!has_param("&&", ""));
        assert_eq!(param("nonce=5&x=1", "nonce"), Some("5"));
        assert_eq!(param("x=1&&nonce=", "nonce"), Some(""));
        assert_eq!(param("x=nonce", "nonce"), None);
        assert_eq!(split_query("&a=1&&"), vec![("a", "1")]);
        for q in [
            "",
            "?",
            "&",
            "=",
            "a",
            "a=",
            "=a",
            "ab=1&a",
            "?a&&b=a=c&",
            "b&a=&",
            "??a=1",
            "x=1&a",
            "a?=1&?a",
        ] {
            for name in ["", "a", "b", "ab", "c", "?a"] {
                let want = split_query(q).iter().any(|(k, _)| *k == name);
                assert_eq!(has_param(q, name), want, "{q:?} {name:?}");
            }
        }
    }

    #[test]
    fn next_amp_finds_the_first_ampersand() {
        // Neighbours of `&` (0x26) in every byte lane: bytes whose xor with `&` is 1 or has the
        // high bit set are where a word-at-a-time zero test goes wrong if it is written wrong.
        let fill = [0x27, 0x25, 0xa6, 0x00, 0xff, b'a', 0x24, 0x07];
        for len in 0..=27 {
            for amps in [
                vec![],
                vec![len / 2],
                vec![len / 3, len - len / 4],
                (0..len).collect(),
            ] {
                let mut q: Vec<u8> = (0..len).map(|i| fill[(i * 5 + len) % fill.len()]).collect();
                for &a in amps.iter().filter(|&&a| a < len) {
                    q[a] = b'&';
                }
                for at in 0..=len {
                    let want = (at..len).find(|&i| q[i] == b'&').unwrap_or(len);
                    assert_eq!(next_amp(&q, at), want, "{q:?} from {at}");
                }
            }
        }
    }

    #[test]
    fn times_match_a_date_library() {
        // Every day of the two years after the epoch, 2000, 2100 and 9998, and 20,000 times
        // spread up to the end of year 9999, against the `time` crate.
        let reference = |ms: u64| {
            let nanos = i128::from(ms) * 1_000_000;
            let t = time::OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap();
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
                t.millisecond()
            )
        };
        let mut cases = vec![0, 1, 999, 1_000, 86_399_999, 86_400_000, MAX_MS];
        for start_day in [0u64, 10_957 - 400, 47_482 - 400, 2_932_896 - 800] {
            for d in 0..800 {
                let day = (start_day + d) * 86_400_000;
                cases.extend([day, day + 86_399_999, day + 45_296_789]);
            }
        }
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            cases.push(x % (MAX_MS + 1));
        }
        for ms in cases {
            let want = reference(ms);
            assert_eq!(iso8601_millis(ms).unwrap(), want, "{ms}");
            assert_eq!(iso8601_seconds(ms).unwrap(), want[..19], "{ms}");
        }
        assert!(iso8601_millis(MAX_MS + 1).is_err());
    }

    #[test]
    fn decimals_push() {
        for n in [0, 7, 10, 1_700_000_000_000, u64::MAX] {
            let mut s = String::from("x=");
            push_u64(&mut s, n);
            assert_eq!(s, format!("x={n}"));
        }
    }
}
