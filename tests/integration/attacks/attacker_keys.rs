//! The keys the attacker brings to the wraps and derivations.

use cryptoki_sys::*;

use crate::raw_pkcs11::{rv_name, Mech, Raw, Template};

/// Keys the attacker brings: a wrapping key generated in the token, a wrapping key imported
/// with a value the attacker knows, a generic secret for concatenation, an RSA key pair.
pub(super) struct AttackerKeys {
    pub(super) generated_aes: Option<CK_OBJECT_HANDLE>,
    pub(super) imported_aes: Option<CK_OBJECT_HANDLE>,
    pub(super) generic: Option<CK_OBJECT_HANDLE>,
    pub(super) rsa_public: Option<CK_OBJECT_HANDLE>,
    pub(super) rsa_private: Option<CK_OBJECT_HANDLE>,
}

impl AttackerKeys {
    pub(super) fn make(raw: &Raw) -> Self {
        let ok = |(rv, h): (CK_RV, CK_OBJECT_HANDLE), what: &str| {
            if rv == CKR_OK {
                Some(h)
            } else {
                println!("(attacker could not create {what}: {})", rv_name(rv));
                None
            }
        };
        let generated_aes = ok(
            raw.generate_key(
                Mech::new(CKM_AES_KEY_GEN),
                Template::new()
                    .bool(CKA_TOKEN, false)
                    .bool(CKA_WRAP, true)
                    .bool(CKA_UNWRAP, true)
                    .bool(CKA_ENCRYPT, true)
                    .bool(CKA_DECRYPT, true)
                    .bool(CKA_EXTRACTABLE, true)
                    .bool(CKA_SENSITIVE, false)
                    .ulong(CKA_VALUE_LEN, 32),
            ),
            "a generated AES key",
        );
        let imported_aes = ok(
            raw.create(
                Template::new()
                    .ulong(CKA_CLASS, CKO_SECRET_KEY)
                    .ulong(CKA_KEY_TYPE, CKK_AES)
                    .bool(CKA_TOKEN, false)
                    .bool(CKA_WRAP, true)
                    .bool(CKA_UNWRAP, true)
                    .bool(CKA_ENCRYPT, true)
                    .bool(CKA_DECRYPT, true)
                    .bool(CKA_EXTRACTABLE, true)
                    .bool(CKA_SENSITIVE, false)
                    .bytes(CKA_VALUE, &[0x41; 32]),
            ),
            "an imported AES key",
        );
        let generic = ok(
            raw.create(
                Template::new()
                    .ulong(CKA_CLASS, CKO_SECRET_KEY)
                    .ulong(CKA_KEY_TYPE, CKK_GENERIC_SECRET)
                    .bool(CKA_TOKEN, false)
                    .bool(CKA_DERIVE, true)
                    .bool(CKA_EXTRACTABLE, true)
                    .bool(CKA_SENSITIVE, false)
                    .bytes(CKA_VALUE, &[0x42; 32]),
            ),
            "a generic secret",
        );
        let (rv, rsa_public, rsa_private) = raw.generate_key_pair(
            Mech::new(CKM_RSA_PKCS_KEY_PAIR_GEN),
            Template::new()
                .bool(CKA_TOKEN, false)
                .bool(CKA_WRAP, true)
                .bool(CKA_ENCRYPT, true)
                .ulong(CKA_MODULUS_BITS, 2048)
                .bytes(CKA_PUBLIC_EXPONENT, &[1, 0, 1]),
            Template::new()
                .bool(CKA_TOKEN, false)
                .bool(CKA_UNWRAP, true)
                .bool(CKA_DECRYPT, true)
                .bool(CKA_SENSITIVE, false)
                .bool(CKA_EXTRACTABLE, true),
        );
        let (rsa_public, rsa_private) = if rv == CKR_OK {
            (Some(rsa_public), Some(rsa_private))
        } else {
            println!("(attacker could not generate an RSA pair: {})", rv_name(rv));
            (None, None)
        };
        AttackerKeys {
            generated_aes,
            imported_aes,
            generic,
            rsa_public,
            rsa_private,
        }
    }

    fn handles(&self) -> Vec<CK_OBJECT_HANDLE> {
        [
            self.generated_aes,
            self.imported_aes,
            self.generic,
            self.rsa_public,
            self.rsa_private,
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    pub(super) fn destroy(&self, raw: &Raw) {
        for h in self.handles() {
            raw.destroy(h);
        }
    }
}
