//! One line of the audit log as data: [`Record`], its [`Event`] and [`Decision`], and the
//! [`ResetFacts`] a `chain_reset` line carries. The serialised form is the line format of the
//! module docs: field order, names and values are part of the MAC chain, so they never change
//! (an old log must keep verifying); the tests below pin them.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::alg::KeyKind;

/// What an audit line records (`event`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// The first line of every file: a new log, or the continuation after a rotation.
    ChainStart,
    /// `hsm-custody audit reset`: a new chain on the record.
    ChainReset,
    /// A signature the guard judged (see `decision`).
    Sign,
    /// A signature the guard allowed and the token then failed.
    SignFailed,
    /// A key was created (version 1 imported, generated or adopted).
    Created,
    /// `rotate begin`: a pending version was added.
    RotationBegun,
    /// A pending version became the active one.
    Promoted,
    /// Versions retired (destroyed) after a rotation.
    Retired,
    /// Versions revoked (destroyed at once).
    Revoked,
    /// A login to the token was refused.
    LoginFailed,
    /// The gateway's reply from the exchange for a request it re-signed.
    GatewayReply,
}

impl Event {
    /// The name in the line (`chain_start`, `sign`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Event::ChainStart => "chain_start",
            Event::ChainReset => "chain_reset",
            Event::Sign => "sign",
            Event::SignFailed => "sign_failed",
            Event::Created => "created",
            Event::RotationBegun => "rotation_begun",
            Event::Promoted => "promoted",
            Event::Retired => "retired",
            Event::Revoked => "revoked",
            Event::LoginFailed => "login_failed",
            Event::GatewayReply => "gateway_reply",
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The guard's decision on a signature (`decision`: `allow` or `deny`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Decision {
    /// Sent to the token.
    Allow,
    /// Refused by policy or a rate limit.
    Deny,
}

impl Decision {
    /// `allow` or `deny`.
    pub fn name(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One audit line (without its MAC).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Record {
    /// Position in the chain, from 1.
    pub seq: u64,
    /// When it was written (UTC; RFC 3339 in the line).
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// What happened.
    pub event: Event,
    /// Key name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Key version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// Versions affected (retire, revoke).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versions: Option<Vec<u32>>,
    /// Key kind (created).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<KeyKind>,
    /// Token label (login failures).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Exchange id of the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange: Option<String>,
    /// HTTP method of the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The endpoint the exchange will execute (the signed path, or the endpoint a signed body
    /// names); for exchanges that do not sign the path, the one the caller named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// What the exchange's signature binds (`method,path,query,body,time` ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding: Option<String>,
    /// Where the path is not signed: every parameter name the exchange will read, which decides
    /// where the signature is good.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Vec<String>>,
    /// Who asked for the signature, when the signer was told (the agent: `uid=… pid=…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// SHA-256 (hex) of the bytes signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// What the guard decided (sign lines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    /// The rule that decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// What happened next (`sent`, `denied`, `rate_limited`, an error message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// `login_failed` buffered by a process that could not log in: when it happened (`time`
    /// is when this line was written). What that process said, unauthenticated until here.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub observed: Option<OffsetDateTime>,
    /// `chain_start` after a rotation: the chain's id (see `docs/guardrails.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    /// `chain_reset`: why the operator started a new chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `chain_reset`: what was known of the old chain's end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset: Option<ResetFacts>,
    /// `chain_start`: the file that holds the previous line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_file: Option<String>,
    /// `chain_start`: MAC of the previous line (hex; zeros for a new chain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_mac: Option<String>,
    /// The line starts an epoch: its nonce (16 bytes, hex), from which the token derives the
    /// key that MACs this line and the following ones (see `docs/guardrails.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<String>,
}

/// What a `chain_reset` line records of the chain it ends: its id, the last line its active
/// file held, the line its head file recorded, and the line the token's chain head recorded
/// (each `None` when missing or unreadable). Lines between the file's last and the higher of
/// the two heads were lost before the reset.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ResetFacts {
    /// The old chain's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_chain: Option<String>,
    /// The file the old chain's active file was renamed to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_file: Option<String>,
    /// `seq` of the old active file's last readable line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_seq: Option<u64>,
    /// Its MAC (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_mac: Option<String>,
    /// `seq` the old head file recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_seq: Option<u64>,
    /// `seq` the token's chain head recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_seq: Option<u64>,
}

impl ResetFacts {
    /// How many lines the old chain is known to have lost: from the file's last line up to the
    /// higher head; `None` when no head was known (a loss cannot be ruled out).
    pub fn lost_lines(&self) -> Option<u64> {
        let head = self.head_seq.max(self.token_seq)?;
        Some(head.saturating_sub(self.file_seq.unwrap_or(0)))
    }
}

/// What the writer needs of a line: its serialised form (a JSON object, fields in the order
/// of the module docs) and the fields it sets when it writes it.
pub(crate) trait Line: Serialize {
    /// Sets `seq`, `time`, and `epoch` when the line starts one.
    fn stamp(&mut self, seq: u64, time: OffsetDateTime, epoch: Option<String>);
}

impl Line for Record {
    fn stamp(&mut self, seq: u64, time: OffsetDateTime, epoch: Option<String>) {
        self.seq = seq;
        self.time = time;
        self.epoch = epoch;
    }
}

/// A `sign` line as the guard writes it for every signature it judges, borrowed from the
/// request (no copies on the signing path). Serialises to the bytes of the same
/// [`Record`] (the same names, order and omissions: pinned by a test below).
#[derive(Serialize)]
pub(crate) struct SignLine<'a> {
    pub seq: u64,
    #[serde(serialize_with = "rfc3339")]
    pub time: OffsetDateTime,
    pub event: Event,
    pub key: &'a str,
    pub version: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exchange: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binding: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<&'a str>,
    pub sha256: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<String>,
}

/// `time`'s RFC 3339 form of a UTC time (`2026-12-06T10:11:12.5Z`: fraction digits without
/// trailing zeros, none for a whole second), written without `time`'s general formatter (the
/// guard writes one per signature). Pinned against `time` by a test below; a year outside
/// 0000-9999 goes through `time` (which refuses it, as for a `Record`).
fn rfc3339<S: serde::Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
    let year = t.year();
    if !(0..=9999).contains(&year) || !t.offset().is_utc() {
        return time::serde::rfc3339::serialize(t, s);
    }
    fn put(out: &mut [u8; 30], at: usize, value: u32, width: usize) {
        let mut v = value;
        for i in (0..width).rev() {
            out[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    }
    let mut out = [0u8; 30];
    put(&mut out, 0, year as u32, 4);
    put(&mut out, 5, u8::from(t.month()).into(), 2);
    put(&mut out, 8, t.day().into(), 2);
    put(&mut out, 11, t.hour().into(), 2);
    put(&mut out, 14, t.minute().into(), 2);
    put(&mut out, 17, t.second().into(), 2);
    out[4] = b'-';
    out[7] = b'-';
    out[10] = b'T';
    out[13] = b':';
    out[16] = b':';
    let mut end = 19;
    let nanos = t.nanosecond();
    if nanos != 0 {
        out[19] = b'.';
        put(&mut out, 20, nanos, 9);
        end = 29;
        while out[end - 1] == b'0' {
            end -= 1;
        }
    }
    out[end] = b'Z';
    // Only ASCII digits and separators were written.
    s.serialize_str(std::str::from_utf8(&out[..=end]).unwrap_or_default())
}

impl Line for SignLine<'_> {
    fn stamp(&mut self, seq: u64, time: OffsetDateTime, epoch: Option<String>) {
        self.seq = seq;
        self.time = time;
        self.epoch = epoch;
    }
}

impl Record {
    /// A record of `event` (seq and time are set when it is written).
    pub fn new(event: Event) -> Self {
        Record {
            seq: 0,
            time: OffsetDateTime::UNIX_EPOCH,
            event,
            key: None,
            version: None,
            versions: None,
            kind: None,
            token: None,
            exchange: None,
            method: None,
            path: None,
            binding: None,
            params: None,
            client: None,
            sha256: None,
            decision: None,
            rule: None,
            outcome: None,
            observed: None,
            chain: None,
            reason: None,
            reset: None,
            prev_file: None,
            prev_mac: None,
            epoch: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{body_of, parse_line};
    use super::*;

    /// Lines written before the fields were typed (`tests/data/audit-v1`, every event but the
    /// gateway's) parse, and serialise back to the very bytes their MACs cover.
    #[test]
    fn lines_written_before_typed_fields_serialise_back_byte_for_byte() {
        let old = concat!(
            include_str!("../../tests/data/audit-v1/audit.jsonl.000000000001"),
            include_str!("../../tests/data/audit-v1/audit.jsonl")
        );
        let mut events = Vec::new();
        for line in old.lines() {
            let (rec, body, _) = parse_line(line).unwrap();
            assert_eq!(body_of(&rec).unwrap(), body);
            events.push(rec.event);
        }
        assert_eq!(events.len(), 13);
        assert!(events.contains(&Event::LoginFailed) && events.contains(&Event::ChainReset));
        // A time whose nanoseconds end in a zero is written with 8 digits, and read back so.
        let (rec, _, _) = parse_line(old.lines().nth(6).unwrap()).unwrap();
        assert_eq!(rec.event, Event::Promoted);
        assert_eq!(rec.time.nanosecond(), 338_763_790);
    }

    /// The guard's borrowed line is the same line as the record it stands for.
    #[test]
    fn a_sign_line_serialises_as_its_record() {
        let params = vec!["symbol".to_owned(), "side".to_owned()];
        for full in [false, true] {
            let mut rec = Record::new(Event::Sign);
            rec.seq = 42;
            rec.time =
                OffsetDateTime::from_unix_timestamp_nanos(1_765_000_000_123_456_780).unwrap();
            rec.key = Some("bn\"k".into());
            rec.version = Some(3);
            rec.sha256 = Some("ab".repeat(32));
            rec.decision = Some(Decision::Deny);
            rec.rule = Some("withdrawal-guard:binance".into());
            rec.outcome = Some("denied".into());
            if full {
                rec.exchange = Some("binance".into());
                rec.method = Some("POST".into());
                rec.path = Some("/sapi/v1/capital/withdraw/apply".into());
                rec.binding = Some("method,path,query,body,time".into());
                rec.params = Some(params.clone());
                rec.client = Some("uid=1 pid=2".into());
                rec.epoch = Some("0f".repeat(16));
            }
            let line = SignLine {
                seq: rec.seq,
                time: rec.time,
                event: Event::Sign,
                key: rec.key.as_deref().unwrap(),
                version: 3,
                exchange: rec.exchange.as_deref(),
                method: rec.method.as_deref(),
                path: rec.path.as_deref(),
                binding: rec.binding.as_deref(),
                params: rec.params.as_deref(),
                client: rec.client.as_deref(),
                sha256: rec.sha256.as_deref().unwrap(),
                decision: rec.decision,
                rule: rec.rule.as_deref(),
                outcome: rec.outcome.as_deref(),
                epoch: rec.epoch.clone(),
            };
            assert_eq!(
                serde_json::to_string(&line).unwrap(),
                body_of(&rec).unwrap()
            );
            // The `sign_failed` line: no decision or rule, the token's error as the outcome.
            let failed = SignLine {
                event: Event::SignFailed,
                decision: None,
                rule: None,
                outcome: Some("token: CKR_DEVICE_ERROR"),
                ..line
            };
            let failed = serde_json::to_string(&failed).unwrap();
            let mut rec = rec.clone();
            rec.event = Event::SignFailed;
            rec.decision = None;
            rec.rule = None;
            rec.outcome = Some("token: CKR_DEVICE_ERROR".into());
            assert_eq!(failed, body_of(&rec).unwrap());
        }
    }

    /// The guard's own time format is `time`'s, byte for byte.
    #[test]
    fn the_fast_time_format_is_times_rfc3339() {
        #[derive(Serialize)]
        struct Fast(#[serde(serialize_with = "super::rfc3339")] OffsetDateTime);
        #[derive(Serialize)]
        struct Slow(#[serde(with = "time::serde::rfc3339")] OffsetDateTime);
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut cases = vec![
            0i128,
            1,
            999_999_999,
            1_000_000_000,
            1_765_000_000_100_000_000,
        ];
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Any instant from 1970 to about 2286, and whole seconds and tenths too.
            let n = i128::from(x % 10_000_000_000_000_000_000);
            cases.push(n);
            cases.push(n / 1_000_000_000 * 1_000_000_000);
            cases.push(n / 100_000_000 * 100_000_000);
        }
        for n in cases {
            let t = OffsetDateTime::from_unix_timestamp_nanos(n).unwrap();
            assert_eq!(
                serde_json::to_string(&Fast(t)).unwrap(),
                serde_json::to_string(&Slow(t)).unwrap(),
                "{n}"
            );
        }
    }

    #[test]
    fn names_are_the_serialised_forms() {
        let every = [
            Event::ChainStart,
            Event::ChainReset,
            Event::Sign,
            Event::SignFailed,
            Event::Created,
            Event::RotationBegun,
            Event::Promoted,
            Event::Retired,
            Event::Revoked,
            Event::LoginFailed,
            Event::GatewayReply,
        ];
        for e in every {
            assert_eq!(serde_json::to_string(&e).unwrap(), format!("\"{e}\""));
        }
        for d in [Decision::Allow, Decision::Deny] {
            assert_eq!(serde_json::to_string(&d).unwrap(), format!("\"{d}\""));
        }
        let unknown = serde_json::from_str::<Event>("\"sign_maybe\"");
        assert!(unknown.is_err());
    }
}
