//! Binance FIX API Logon`<A>` (Ed25519 keys only).

use super::super::{check_binding, InRequest, Reach};
use super::{BinanceWs, SPOT_INFO};
use crate::error::{Error, Result};
use crate::keys::KeyKind;
use crate::sign::Mac;

/// The fields of a Binance FIX API Logon`<A>` that its signature covers.
///
/// ```
/// use hsm_custody::exchanges::BinanceFixLogon;
///
/// let logon = BinanceFixLogon {
///     sender_comp_id: "EXAMPLE",
///     target_comp_id: "SPOT",
///     msg_seq_num: 1,
///     sending_time: "20240627-11:17:25.223",
/// };
/// assert_eq!(logon.payload(), "A\x01EXAMPLE\x01SPOT\x011\x0120240627-11:17:25.223");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BinanceFixLogon<'a> {
    /// SenderCompID(49), chosen by the client.
    pub sender_comp_id: &'a str,
    /// TargetCompID(56): `SPOT`.
    pub target_comp_id: &'a str,
    /// MsgSeqNum(34) of the Logon.
    pub msg_seq_num: u64,
    /// SendingTime(52) exactly as sent (`YYYYMMDD-HH:MM:SS.sss`).
    pub sending_time: &'a str,
}

impl BinanceFixLogon<'_> {
    /// The signed payload: MsgType `A`, SenderCompID, TargetCompID, MsgSeqNum, SendingTime,
    /// joined by SOH (0x01).
    pub fn payload(&self) -> String {
        format!(
            "A\x01{}\x01{}\x01{}\x01{}",
            self.sender_comp_id, self.target_comp_id, self.msg_seq_num, self.sending_time
        )
    }

    /// Signs the Logon in the token and returns the base64 for RawData(96). The key must be an
    /// Ed25519 key bound to Binance (FIX sessions take Ed25519 keys only); guard rails see
    /// exchange `binance`, method `FIX`, path `Logon`.
    ///
    /// # Errors
    /// [`Error::WrongKeyKind`] for another kind of key, [`Error::WrongExchange`] or
    /// [`Error::InvalidInput`] for the key binding, or the token's error.
    pub fn sign(&self, key: &dyn Mac) -> Result<String> {
        check_binding(&BinanceWs, key)?;
        if key.kind() != KeyKind::Ed25519 {
            return Err(Error::WrongKeyKind {
                name: key.key_name().to_owned(),
                kind: key.kind().name().into(),
                wanted: "an Ed25519 key (Binance FIX sessions take Ed25519 keys only)".into(),
            });
        }
        let reach = Reach::bound("FIX", "Logon");
        let key = InRequest::new(key, SPOT_INFO.id, &reach);
        Ok(key.sign_asym(self.payload().as_bytes())?.to_base64())
    }
}
