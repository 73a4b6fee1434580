//! Extraction attack suite (issue 6): every way Clulow (2003) and the Tookan attacks of
//! Bortolozzo et al. (2010) try to get a key's value out of a PKCS#11 token, tried against the
//! keys the crate creates. Every attempt is one raw PKCS#11 call whose return code is checked
//! (cryptoki's `get_attributes` drops unreadable attributes, so it proves nothing).
//!
//! The attacker is as strong as an application can be: it runs in the process that holds the
//! login (login is per application), finds the keys by label and may create keys of its own.
//! [`attack_key`] takes any module, slot and key handle, so the same list runs on other backends.
//!
//! One file per attack class, run in this order on every target by [`attack_key`]: [`read`]
//! (the value), [`modify`] (lower the protection in place), [`wrap`] (with the attacker's keys,
//! [`attacker_keys`]), [`copy`] (a weaker copy, itself attacked once more), [`derive`] (into a
//! readable key) and [`misuse`] (ciphers, weak or truncated MACs, digests). The tests:
//! [`suite`] (every crate key on every backend, against the sets in [`expected`]), [`doctor`]
//! (the health check finds what the suite finds) and, in [`misuse`], the digest of a long secret.
//! The raw PKCS#11 underneath is `tests/support/raw_pkcs11.rs`.

mod attacker_keys;
mod copy;
mod derive;
mod doctor;
mod expected;
mod misuse;
mod modify;
mod read;
mod suite;
mod wrap;

use cryptoki_sys::*;

// The TPM tests (tpm.rs) run the same list and take the raw view from here.
use crate::raw_pkcs11::Template;
pub use crate::raw_pkcs11::{rv_name, Raw};

use attacker_keys::AttackerKeys;

/// One attack attempt and what the token answered.
pub struct Outcome {
    pub target: String,
    pub attempt: String,
    pub rv: CK_RV,
    pub refused: bool,
    /// Not refused, but what came out is a one-way function of the key (a digest), which
    /// confirms guesses exactly as the HMAC signing oracle does and reveals no more.
    pub oracle: Option<Vec<u8>>,
    /// What the attacker got when the token did not refuse (never printed as bytes).
    pub note: String,
}

/// The outcomes against one target, in the order they were tried.
struct Attempts<'t> {
    target: &'t str,
    out: Vec<Outcome>,
}

impl Attempts<'_> {
    fn record(&mut self, attempt: &str, rv: CK_RV, refused: bool, note: String) {
        self.out.push(Outcome {
            target: self.target.to_owned(),
            attempt: attempt.to_owned(),
            rv,
            refused,
            note,
            oracle: None,
        });
    }
}

/// Every extraction attempt against `key` (a secret or private key). The caller's view `raw`
/// must be logged in. Objects the attempts create are inspected and destroyed.
pub fn attack_key(raw: &Raw, key: CK_OBJECT_HANDLE, target: &str) -> Vec<Outcome> {
    attack_key_depth(raw, key, target, 1)
}

/// [`attack_key`]; a copy that the module lets gain a permission (DERIVE, WRAP, ENCRYPT, ...)
/// is itself attacked with the whole list while `depth > 0` (a second-order attack: Clulow's
/// derivations need a DERIVE key). Those outcomes are named `<copy attempt> -> <attempt>`.
fn attack_key_depth(raw: &Raw, key: CK_OBJECT_HANDLE, target: &str, depth: u32) -> Vec<Outcome> {
    let mut log = Attempts {
        target,
        out: Vec::new(),
    };
    let mechanisms = raw.mechanisms();
    read::attempts(raw, key, &mut log);
    modify::attempts(raw, key, &mut log);
    let keys = AttackerKeys::make(raw);
    wrap::attempts(raw, key, &keys, &mut log);
    let nested = copy::attempts(raw, key, depth, &mut log);
    derive::attempts(raw, key, &keys, &mechanisms, &mut log);
    let digest = misuse::attempts(raw, key, &mut log);
    // Unwrapping an attacker blob *as* this key is not an extraction; done.
    keys.destroy(raw);
    let mut out = log.out;
    if let (Some(last), Some(d)) = (out.last_mut(), digest) {
        last.oracle = Some(d);
    }
    out.extend(nested);
    out
}

/// Which protections an object lacks (for objects an attack managed to create).
fn weaknesses(raw: &Raw, obj: CK_OBJECT_HANDLE) -> Vec<String> {
    let mut weak = Vec::new();
    if let (_, Some(v)) = raw.attribute(obj, CKA_VALUE) {
        if !v.is_empty() {
            weak.push(format!("CKA_VALUE readable ({} bytes)", v.len()));
        }
    }
    for (name, type_, bad) in [
        ("EXTRACTABLE", CKA_EXTRACTABLE, true),
        ("SENSITIVE=false", CKA_SENSITIVE, false),
        ("DERIVE", CKA_DERIVE, true),
        ("WRAP", CKA_WRAP, true),
        ("ENCRYPT", CKA_ENCRYPT, true),
    ] {
        if raw.bool_attribute(obj, type_) == Some(bad) {
            weak.push(name.to_owned());
        }
    }
    weak
}

/// Prints `target | attempt | CKR | refused` (visible with `--nocapture`).
pub fn print_table(title: &str, outcomes: &[Outcome]) {
    println!("\n## {title}\n");
    println!("| target | attempt | CKR | refused |");
    println!("|---|---|---|---|");
    for o in outcomes {
        let refused = if o.refused {
            "yes".to_owned()
        } else if o.oracle.is_some() {
            "no: digest oracle, SHA-256 of the value (see note)".to_owned()
        } else {
            format!("**NO**: {}", o.note)
        };
        let ckr = if o.note.is_empty() || !o.refused {
            rv_name(o.rv)
        } else {
            format!("{} ({})", rv_name(o.rv), o.note)
        };
        println!("| {} | {} | {} | {} |", o.target, o.attempt, ckr, refused);
    }
}

/// Asserts that the attempts let through (not refused, not a digest oracle) among `outcomes`
/// (those against `target`, or all) are exactly `expected`, so that the test fails if the set
/// grows or shrinks; the message lists what got through and what the module answered.
pub fn assert_lets_through_exactly(
    outcomes: &[Outcome],
    target: Option<&str>,
    expected: &[&str],
    module: &str,
) {
    let through: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| target.is_none_or(|t| o.target == t) && !o.refused && o.oracle.is_none())
        .collect();
    let accepted: std::collections::BTreeSet<&str> =
        through.iter().map(|o| o.attempt.as_str()).collect();
    let detail: Vec<String> = through
        .iter()
        .map(|o| format!("{} / {}: {} {}", o.target, o.attempt, rv_name(o.rv), o.note))
        .collect();
    assert_eq!(
        accepted,
        expected.iter().copied().collect(),
        "{}: the set of attacks {module} lets through changed:\n{}",
        target.unwrap_or("every target"),
        detail.join("\n")
    );
}

/// Every secret or private key object in the token (token and session objects visible to the
/// application), with its label and whether it is a token object.
pub fn key_objects(raw: &Raw) -> Vec<(CK_OBJECT_HANDLE, String, bool)> {
    let mut all = Vec::new();
    for class in [CKO_SECRET_KEY, CKO_PRIVATE_KEY] {
        for h in raw.find(Template::new().ulong(CKA_CLASS, class)) {
            let label = raw
                .attribute(h, CKA_LABEL)
                .1
                .map(|l| String::from_utf8_lossy(&l).into_owned())
                .unwrap_or_default();
            let token = raw.bool_attribute(h, CKA_TOKEN).unwrap_or(true);
            all.push((h, label, token));
        }
    }
    all
}

/// A random-looking secret, made at run time.
fn test_secret(raw: &Raw) -> String {
    hex::encode(raw.random(24))
}
