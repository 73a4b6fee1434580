//! The bench's tokens: fresh ones with the crate connected (plain and guarded), the exchange
//! keys imported through the crate, filler keys, and raw handles on the same objects.

use cryptoki::context::Pkcs11;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki::slot::Slot;
use hsm_custody::{
    Config, Custody, GuardConfig, Guardrails, HmacAlg, KeySpec, SecretEncoding, SecretString,
};

use crate::common::BenchEnv;

/// A fresh token with the crate connected to it (once plain, once with the bench guard), a raw
/// cryptoki context on the same module, and the secrets imported into it.
pub struct BenchToken {
    pub label: String,
    pub pin: SecretString,
    pub slot: Slot,
    pub custody: Custody,
    pub guarded: Custody,
    pub keys: usize,
}

pub fn fresh_token(env: &BenchEnv, label: &str) -> BenchToken {
    let pin = SecretString::from(format!("bench-user-{}", std::process::id()));
    let so = SecretString::from(format!("bench-so-{}", std::process::id()));
    hsm_custody::admin::init_token(&env.module, label, &so, &pin).expect("init token");
    let config = Config::new(&env.module, label).pin(pin.clone());
    let custody = Custody::connect(config.clone()).expect("connect");
    let guarded = Custody::connect(config).expect("connect guarded");
    // The real guard rails (issues 5, 29): a policy for every key with a rate limit (high
    // enough never to refuse here, so that its check is measured, not its refusals), and the
    // MAC-chained audit log as deployed, `fsync = "batch"` (the flusher's fsyncs run beside the
    // signers, on the same cores).
    let audit = env.dir.path().join(format!("{label}-audit.jsonl"));
    let toml = format!(
        "[audit]\npath = '{}'\nfsync = 'batch'\n[keys.\"*\"]\nallow_raw = true\n\
         rate_per_second = 100000000\nburst = 100000000\n",
        audit.display()
    );
    let guard = GuardConfig::from_toml_str(&toml)
        .expect("guard config")
        .expect("guard rails configured");
    Guardrails::install(&guarded, guard).expect("guard rails");
    let slot = Slot::try_from(hsm_custody::admin::slot_id(&env.module, label).expect("slot"))
        .expect("slot id");
    BenchToken {
        label: label.to_owned(),
        pin,
        slot,
        custody,
        guarded,
        keys: 0,
    }
}

/// A deterministic 64-character printable secret (the length exchanges issue).
pub fn secret_text(seed: u8) -> String {
    crate::common::secret_text(u64::from(seed))
}

/// What one imported exchange key is: name, the bytes stored in the token, its algorithm.
pub struct BenchKey {
    pub name: &'static str,
    pub value: Vec<u8>,
    pub alg: HmacAlg,
}

pub fn import(t: &mut BenchToken, name: &'static str, exchange: &str, seed: u8) -> BenchKey {
    let text = secret_text(seed);
    let (spec, value, alg) = if exchange == "kraken" {
        use base64::Engine as _;
        let bytes: Vec<u8> = text.bytes().chain(text.bytes().rev()).collect(); // 128 bytes
        let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
        let spec = KeySpec::hmac(name)
            .exchange(exchange)
            .encoding(SecretEncoding::Base64)
            .algorithms(&[HmacAlg::HmacSha512]);
        t.custody
            .import_hmac_secret(spec.clone(), SecretString::from(b64))
            .expect("import");
        (spec, bytes, HmacAlg::HmacSha512)
    } else {
        let spec = KeySpec::hmac(name)
            .exchange(exchange)
            .algorithms(&[HmacAlg::HmacSha256]);
        t.custody
            .import_hmac_secret(spec.clone(), SecretString::from(text.clone()))
            .expect("import");
        (spec, text.into_bytes(), HmacAlg::HmacSha256)
    };
    let _ = spec;
    t.keys += 1;
    BenchKey { name, value, alg }
}

/// Fills the token up to `total` keys with hardened HMAC keys, each with a data object beside
/// it, as the crate stores keys (raw `C_CreateObject`: importing 1,000 keys one by one through
/// the crate's self-checked path would dominate the run).
pub fn add_fillers(ctx: &Pkcs11, t: &mut BenchToken, total: usize) {
    let session = ctx.open_rw_session(t.slot).expect("session");
    for i in t.keys..total {
        let label = format!("filler-{i:05}").into_bytes();
        session
            .create_object(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::GENERIC_SECRET),
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Modifiable(false),
                Attribute::Sign(true),
                Attribute::Verify(true),
                Attribute::Derive(false),
                Attribute::Label(label.clone()),
                Attribute::Id(vec![0, 0, 0, 1]),
                Attribute::Value(secret_text((i % 251) as u8).into_bytes()),
            ])
            .expect("filler key");
        session
            .create_object(&[
                Attribute::Class(ObjectClass::DATA),
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Label(label),
                Attribute::Application(b"bench-filler".to_vec()),
                Attribute::Value(br#"{"bench":"filler"}"#.to_vec()),
            ])
            .expect("filler data");
    }
    t.keys = total;
}

pub fn find_key(session: &Session, name: &str) -> ObjectHandle {
    *session
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Label(name.as_bytes().to_vec()),
        ])
        .expect("find")
        .first()
        .expect("key in token")
}

/// A hardened session object with the same value (what a session-object fast path signs with).
pub fn session_object(holder: &Session, key: &BenchKey) -> ObjectHandle {
    holder
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Token(false),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Modifiable(false),
            Attribute::Sign(true),
            Attribute::Derive(false),
            Attribute::Value(key.value.clone()),
        ])
        .expect("session object")
}

pub fn mechanism(alg: HmacAlg) -> Mechanism<'static> {
    match alg {
        HmacAlg::HmacSha256 => Mechanism::Sha256Hmac,
        HmacAlg::HmacSha384 => Mechanism::Sha384Hmac,
        HmacAlg::HmacSha512 => Mechanism::Sha512Hmac,
    }
}
