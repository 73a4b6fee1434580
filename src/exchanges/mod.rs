//! Exchange request signers (issue 3). Placeholder until the signers land.

use crate::keys::SecretEncoding;
use crate::sign::HmacAlg;

/// What an exchange needs of an imported key.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct Profile {
    /// How the exchange shows its secrets.
    pub encoding: SecretEncoding,
    /// The HMAC algorithms its scheme uses.
    pub algorithms: &'static [HmacAlg],
}

/// The key profile for an exchange id, or `None` for an unknown id.
pub fn profile(id: &str) -> Option<Profile> {
    match id {
        "binance" => Some(Profile {
            encoding: SecretEncoding::Raw,
            algorithms: &[HmacAlg::HmacSha256],
        }),
        _ => None,
    }
}
