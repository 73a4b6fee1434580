//! Epoch keys (issue 29): most lines are MACed in software with a key the token derives, so that
//! a guarded signature costs one token operation, not two.
//!
//! An epoch starts at a line carrying `epoch` (16 random bytes from the token, hex). Its key is
//! `HMAC-SHA256(audit key, EPOCH_DOMAIN || nonce)`, computed in the token: only a process
//! logged in to the token can derive it (the audit key never leaves the token, and the crate
//! refuses it to every caller but the log). That line and every following one up to the next
//! line carrying `epoch`, or the end of the file, are MACed with it in software:
//! `mac_i = HMAC-SHA256(epoch key, mac_{i-1} || body_i)`. A file's first line (`chain_start`,
//! `chain_reset`) never carries `epoch` and is MACed in the token, as every line of a log
//! written before epochs was (those logs verify unchanged).
//!
//! The writer starts a new epoch when it opens a file and then at most once a second, with the
//! token's copy of the chain head; the old key is wiped. What an epoch key allows is forging
//! lines of its own epoch: it is held by the writing process only, and lines up to the last
//! checkpoint (the chain head, MACed in the token, in its file and in the token) cannot be
//! changed without breaking the chain to that head whatever keys are known. See
//! `docs/guardrails.md` ("Epoch keys and checkpoints").

use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::{TokenMac, MAC_LEN};
use crate::error::{Error, Result};

/// Domain of the epoch key derivation: line MAC inputs start with a 32-byte MAC and head MAC
/// inputs with `hsm-custody audit head v1\0`, so no input of one kind is one of another.
const EPOCH_DOMAIN: &[u8] = b"hsm-custody audit epoch v1\0";
/// Bytes of an epoch's nonce.
pub(crate) const NONCE_LEN: usize = 16;

/// An epoch's key (wiped on drop; never printed: no `Debug`).
pub(crate) struct Epoch {
    nonce: [u8; NONCE_LEN],
    /// Held only to be wiped: every MAC starts from `keyed`.
    _key: Zeroizing<[u8; MAC_LEN]>,
    /// HMAC's state after the key (its inner and outer pads hashed): cloned for each line,
    /// which saves hashing them again. The `hmac` crate does not wipe it; the key it stands
    /// for lives about a second (see the module docs).
    keyed: Hmac<Sha256>,
}

impl Epoch {
    /// A new epoch: a nonce from the token's random generator, its key derived in the token.
    pub(crate) fn fresh(mac: &TokenMac) -> Result<Epoch> {
        let random = mac
            .vault()?
            .audit_session(false, |s| s.generate_random_vec(NONCE_LEN as u32))?;
        let nonce: [u8; NONCE_LEN] = random
            .as_slice()
            .try_into()
            .map_err(|_| Error::AuditFailed("the token gave a short random nonce".into()))?;
        Epoch::derive(mac, nonce)
    }

    /// The epoch of `nonce` (to verify its lines).
    pub(crate) fn derive(mac: &TokenMac, nonce: [u8; NONCE_LEN]) -> Result<Epoch> {
        let mut input = EPOCH_DOMAIN.to_vec();
        input.extend_from_slice(&nonce);
        Ok(Epoch::with_key(nonce, Zeroizing::new(mac.mac(&input)?)))
    }

    fn with_key(nonce: [u8; NONCE_LEN], key: Zeroizing<[u8; MAC_LEN]>) -> Epoch {
        let keyed =
            <Hmac<Sha256>>::new_from_slice(key.as_slice()).expect("HMAC takes a key of any length");
        Epoch {
            nonce,
            _key: key,
            keyed,
        }
    }

    /// The epoch a line's `epoch` field names.
    pub(crate) fn from_field(mac: &TokenMac, field: &str) -> Result<Epoch> {
        let mut nonce = [0u8; NONCE_LEN];
        hex::decode_to_slice(field, &mut nonce)
            .map_err(|_| Error::AuditFailed("`epoch` is not 32 hex digits".into()))?;
        Epoch::derive(mac, nonce)
    }

    /// The `epoch` field of the line that starts it.
    pub(crate) fn field(&self) -> String {
        hex::encode(self.nonce)
    }

    /// `HMAC-SHA256(key, prev || body)`, in software.
    pub(crate) fn line_mac(&self, prev: &[u8; MAC_LEN], body: &[u8]) -> [u8; MAC_LEN] {
        let mut h = self.keyed.clone();
        h.update(prev);
        h.update(body);
        h.finalize().into_bytes().into()
    }
}

/// The key of the line being read or written: the token's audit key (a file's first line, and
/// every line of a log written before epochs), or the current epoch's.
pub(crate) fn line_mac(
    token: &TokenMac,
    epoch: Option<&Epoch>,
    prev: &[u8; MAC_LEN],
    body: &str,
) -> Result<[u8; MAC_LEN]> {
    match epoch {
        Some(e) => Ok(e.line_mac(prev, body.as_bytes())),
        None => super::chain_mac(token, prev, body),
    }
}

/// Tracks the epoch while reading a file line by line (the verifier and the writer's recovery
/// read the same way).
#[derive(Default)]
pub(crate) struct Reader {
    current: Option<Epoch>,
    /// Epochs met so far.
    pub(crate) epochs: u64,
}

impl Reader {
    /// The key for line `n` (1-based in its file) whose `epoch` field is `field`; derives the
    /// epoch's key in the token when a line starts one.
    ///
    /// # Errors
    /// [`Unreadable::Malformed`]: a first line that carries `epoch`, or an `epoch` that is not
    /// 32 hex digits; [`Unreadable::Token`]: the token could not derive the key.
    pub(crate) fn key_for(
        &mut self,
        token: &TokenMac,
        n: u64,
        field: Option<&str>,
    ) -> std::result::Result<Option<&Epoch>, Unreadable> {
        if n == 1 {
            self.current = None;
            if field.is_some() {
                return Err(Unreadable::Malformed(
                    "a file's first line carries `epoch` (it must be MACed in the token)".into(),
                ));
            }
        }
        if let Some(field) = field {
            if field.len() != 2 * NONCE_LEN || !field.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Unreadable::Malformed("`epoch` is not 32 hex digits".into()));
            }
            self.current = Some(Epoch::from_field(token, field).map_err(Unreadable::Token)?);
            self.epochs += 1;
        }
        Ok(self.current.as_ref())
    }
}

/// Why a line's key could not be found.
pub(crate) enum Unreadable {
    /// The line is not a valid audit line.
    Malformed(String),
    /// The token failed.
    Token(Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_software_mac_is_hmac_sha256_over_prev_and_body() {
        let e = Epoch::with_key([7; NONCE_LEN], Zeroizing::new([0x11; MAC_LEN]));
        let mut h = <hmac::Hmac<Sha256>>::new_from_slice(&[0x11; MAC_LEN]).unwrap();
        h.update(&[0x22; MAC_LEN]);
        h.update(b"{\"seq\":1}");
        let want: [u8; MAC_LEN] = h.finalize().into_bytes().into();
        assert_eq!(e.line_mac(&[0x22; MAC_LEN], b"{\"seq\":1}"), want);
        assert_eq!(e.field(), "07".repeat(NONCE_LEN));
    }
}
