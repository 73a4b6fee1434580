//! Session-object facts on this module, reported with the results (not timed): can the crate's
//! key be copied, and what would a modifiable key allow.

use cryptoki::context::Pkcs11;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use serde_json::json;

use crate::token::{find_key, BenchKey, BenchToken};

/// `Function: RvError` (CKR name) for the probe's report.
pub fn ck_name(e: &cryptoki::error::Error) -> String {
    match e {
        cryptoki::error::Error::Pkcs11(rv, f) => format!("refused: {f:?} {rv:?}"),
        other => other.to_string(),
    }
}

pub fn copy_probe(ctx: &Pkcs11, t: &BenchToken, key: &BenchKey) -> serde_json::Value {
    let session = ctx.open_rw_session(t.slot).expect("session");
    let hardened = find_key(&session, key.name);
    let copy_hardened = match session.copy_object(hardened, &[Attribute::Token(false)]) {
        Ok(h) => {
            let _ = session.destroy_object(h);
            "accepted".to_owned()
        }
        Err(e) => ck_name(&e),
    };
    // A modifiable twin (never what the crate creates): can it be copied, and what does
    // modifiability open up?
    let twin = session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Modifiable(true),
            Attribute::Sign(true),
            Attribute::Derive(false),
            Attribute::Label(b"bench-modifiable-twin".to_vec()),
            Attribute::Value(key.value.clone()),
        ])
        .expect("twin");
    let copy_modifiable = match session.copy_object(
        twin,
        &[Attribute::Token(false), Attribute::Modifiable(false)],
    ) {
        Ok(h) => {
            let _ = session.destroy_object(h);
            "accepted (copy made non-modifiable)".to_owned()
        }
        Err(e) => ck_name(&e),
    };
    let set = |attr: Attribute| match session.update_attributes(twin, &[attr]) {
        Ok(()) => "accepted".to_owned(),
        Err(e) => ck_name(&e),
    };
    let set_derive = set(Attribute::Derive(true));
    let set_encrypt = set(Attribute::Encrypt(true));
    let set_extractable = set(Attribute::Extractable(true));
    let set_sensitive_false = set(Attribute::Sensitive(false));
    let _ = session.destroy_object(twin);
    let read_flag = |h: ObjectHandle| {
        session
            .get_attributes(h, &[AttributeType::Modifiable])
            .ok()
            .and_then(|a| match a.first() {
                Some(Attribute::Modifiable(m)) => Some(*m),
                _ => None,
            })
    };
    json!({
        "crate_key_modifiable": read_flag(hardened),
        "copy_object_on_crate_key": copy_hardened,
        "copy_object_on_modifiable_twin": copy_modifiable,
        "modifiable_twin_set_derive_true": set_derive,
        "modifiable_twin_set_encrypt_true": set_encrypt,
        "modifiable_twin_set_extractable_true": set_extractable,
        "modifiable_twin_set_sensitive_false": set_sensitive_false,
    })
}
