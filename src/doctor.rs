//! Health checks for a module and a token: `hsm-custody doctor`.
//!
//! [`run`] looks at the module (library, mechanisms this crate uses, session limits, PIN
//! counters) before logging in, then logs in and
//! - audits every secret and private key object the application can see, including keys this
//!   crate did not create, for the hardened attributes: any key that is extractable, not
//!   sensitive, has a readable value, or may derive, wrap, unwrap, encrypt or decrypt is a
//!   problem;
//! - probes, on a throwaway session key, whether the module *enforces* non-extractability: it
//!   tries to read the value, to flip `CKA_EXTRACTABLE` / `CKA_SENSITIVE` on a modifiable key,
//!   to wrap it with an AES key of its own and to copy it as extractable. A module that allows
//!   any of these (NSS softokn wraps and copies) is not custody-grade whatever the attributes
//!   say. The throwaway objects are destroyed.
//!
//! Values are never read: a readable `CKA_VALUE` is detected from its reported length.

use std::fmt;

use cryptoki::context::Pkcs11;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::MechanismType;
use cryptoki::object::{Attribute, AttributeInfo, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki::slot::{Limit, Slot};
use serde::Serialize;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::keys::{KeyFlags, APPLICATION};
use crate::token::probe::probe;
pub use crate::token::probe::{Probe, ProbeStep};
use crate::token::{find_slot, module, Token};

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Severity {
    /// For information.
    Info,
    /// Worth a look; custody is not broken.
    Warning,
    /// Custody is at risk or a feature cannot work: `doctor` exits non-zero.
    Problem,
}

/// One thing `doctor` noticed.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct Finding {
    /// How bad it is.
    pub severity: Severity,
    /// What was found and what to do, in one line.
    pub message: String,
}

/// The module as it describes itself.
#[derive(Clone, Debug, Default, Serialize)]
#[non_exhaustive]
pub struct ModuleReport {
    /// Path that was loaded.
    pub path: String,
    /// `CK_INFO.libraryDescription`.
    pub library: String,
    /// `CK_INFO.manufacturerID`.
    pub manufacturer: String,
    /// `CK_INFO.libraryVersion`.
    pub library_version: String,
    /// `CK_INFO.cryptokiVersion`.
    pub cryptoki_version: String,
}

/// The token's state, read before logging in.
#[derive(Clone, Debug, Default, Serialize)]
#[non_exhaustive]
pub struct TokenReport {
    /// Label.
    pub label: String,
    /// Manufacturer.
    pub manufacturer: String,
    /// Model.
    pub model: String,
    /// Serial number.
    pub serial: String,
    /// Session limit (`None`: no limit stated).
    pub max_sessions: Option<u64>,
    /// Read-write session limit (`None`: no limit stated).
    pub max_rw_sessions: Option<u64>,
    /// Sessions open now, if the token says.
    pub sessions: Option<u64>,
    /// `CKF_USER_PIN_COUNT_LOW`.
    pub user_pin_count_low: bool,
    /// `CKF_USER_PIN_FINAL_TRY`.
    pub user_pin_final_try: bool,
    /// `CKF_USER_PIN_LOCKED`.
    pub user_pin_locked: bool,
    /// `CKF_USER_PIN_TO_BE_CHANGED`.
    pub user_pin_to_be_changed: bool,
    /// `CKF_SO_PIN_LOCKED`.
    pub so_pin_locked: bool,
    /// `CKF_WRITE_PROTECTED`.
    pub write_protected: bool,
}

/// Whether a mechanism the crate uses is offered.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct MechanismCheck {
    /// `CKM_...` name.
    pub mechanism: String,
    /// Whether the token lists it.
    pub present: bool,
    /// What needs it.
    pub used_for: &'static str,
}

/// One key object and what is wrong with it.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct KeyAudit {
    /// `CKA_LABEL`.
    pub label: String,
    /// `CKA_ID` in hex.
    pub id: String,
    /// `secret` or `private`.
    pub class: String,
    /// `CKK_...` name.
    pub key_type: String,
    /// Token object (false: a session object of this application).
    pub token_object: bool,
    /// Whether an hsm-custody metadata object carries this label.
    pub managed: bool,
    /// Weaknesses found (empty: hardened).
    pub problems: Vec<String>,
}

/// Everything `doctor` found.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct Report {
    /// The module.
    pub module: ModuleReport,
    /// The token.
    pub token: TokenReport,
    /// Mechanisms the crate uses.
    pub mechanisms: Vec<MechanismCheck>,
    /// The non-extractability probe (absent when login failed).
    pub probe: Option<Probe>,
    /// Every secret and private key object (empty when login failed).
    pub keys: Vec<KeyAudit>,
    /// Findings, worst first.
    pub findings: Vec<Finding>,
}

impl Report {
    /// Number of [`Severity::Problem`] findings.
    pub fn problems(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Problem)
            .count()
    }

    fn add(&mut self, severity: Severity, message: impl Into<String>) {
        self.findings.push(Finding {
            severity,
            message: message.into(),
        });
    }
}

/// Mechanisms the crate uses, and for what.
const MECHANISMS: [(MechanismType, &str, Severity); 8] = [
    (
        MechanismType::SHA256_HMAC,
        "HMAC-SHA256 signing",
        Severity::Problem,
    ),
    (
        MechanismType::SHA384_HMAC,
        "HMAC-SHA384 signing",
        Severity::Problem,
    ),
    (
        MechanismType::SHA512_HMAC,
        "HMAC-SHA512 signing",
        Severity::Problem,
    ),
    (
        MechanismType::AES_KEY_WRAP,
        "the extraction probe, wrapped import",
        Severity::Warning,
    ),
    (MechanismType::EDDSA, "Ed25519 keys", Severity::Warning),
    (MechanismType::ECDSA, "ECDSA P-256 keys", Severity::Warning),
    (
        MechanismType::SHA256_RSA_PKCS,
        "RSA keys",
        Severity::Warning,
    ),
    (
        MechanismType::GENERIC_SECRET_KEY_GEN,
        "the extraction probe",
        Severity::Info,
    ),
];

/// Checks the module and the token named in `config`, then logs in and audits the keys.
///
/// A failed login is a finding, not an error: the module part of the report is still useful.
///
/// # Errors
/// The module cannot be loaded or the token is absent ([`Error::ModuleLoad`],
/// [`Error::TokenNotFound`]), or the token cannot be queried.
///
/// # Security
/// Never reads a key value. The probe key is random, lives in a session object and is destroyed.
pub fn run(config: &Config) -> Result<Report> {
    let ctx = module::load_with(&config.module, config.module_init_params.as_deref())?;
    let slot = find_slot(&ctx, &config.token)?;
    let mut report = Report {
        module: module_report(&ctx, config),
        token: token_report(&ctx, slot)?,
        mechanisms: Vec::new(),
        probe: None,
        keys: Vec::new(),
        findings: Vec::new(),
    };
    check_mechanisms(&ctx, slot, &mut report)?;
    check_token(&mut report);

    let token = match Token::connect(config) {
        Ok(token) => token,
        Err(e) => {
            let hint = e
                .hint()
                .map(|h| format!(" (hint: {h})"))
                .unwrap_or_default();
            report.add(
                Severity::Problem,
                format!("cannot log in, keys not audited: {e}{hint}"),
            );
            report
                .findings
                .sort_by_key(|f| std::cmp::Reverse(f.severity));
            return Ok(report);
        }
    };
    let lease = token.lease()?;
    let session = lease.session();
    let probe = probe(session);
    if !probe.enforces_non_extractability {
        let failed: Vec<_> = probe
            .steps
            .iter()
            .filter(|s| !s.refused)
            .map(|s| s.attempt.as_str())
            .collect();
        report.add(
            Severity::Problem,
            format!(
                "the module does NOT enforce non-extractability ({}): it is not custody-grade, whatever the key attributes say",
                failed.join("; ")
            ),
        );
    }
    if probe.digests_sensitive_keys {
        report.add(
            Severity::Warning,
            "the module accepts C_DigestKey on sensitive keys: it returns a hash of the stored value, an offline guess-confirmation oracle for whoever holds the login; for an HMAC key stored longer than its hash's block that hash IS the effective key (the crate stores such secrets pre-hashed; keys flagged below need a rotation)",
        );
    }
    report.probe = Some(probe);
    report.keys = audit_keys(session).map_err(|e| Error::from_ck(&e))?;
    let mut weak = Vec::new();
    for key in report.keys.iter().filter(|k| !k.problems.is_empty()) {
        weak.push(format!(
            "{} key `{}`{}: {}",
            if key.managed { "managed" } else { "foreign" },
            key.label,
            if key.id.is_empty() {
                String::new()
            } else {
                format!(" (id {})", key.id)
            },
            key.problems.join(", ")
        ));
    }
    for w in weak {
        report.add(Severity::Problem, w);
    }
    report
        .findings
        .sort_by_key(|f| std::cmp::Reverse(f.severity));
    Ok(report)
}

fn module_report(ctx: &Pkcs11, config: &Config) -> ModuleReport {
    let mut m = ModuleReport {
        path: config.module.display().to_string(),
        ..ModuleReport::default()
    };
    if let Ok(info) = ctx.get_library_info() {
        m.library = info.library_description().trim_end().to_owned();
        m.manufacturer = info.manufacturer_id().trim_end().to_owned();
        m.library_version = info.library_version().to_string();
        m.cryptoki_version = info.cryptoki_version().to_string();
    }
    m
}

fn token_report(ctx: &Pkcs11, slot: Slot) -> Result<TokenReport> {
    let info = ctx.get_token_info(slot).map_err(|e| Error::from_ck(&e))?;
    let limit = |l: Limit| match l {
        Limit::Max(n) => Some(n),
        Limit::Infinite | Limit::Unavailable => None,
    };
    Ok(TokenReport {
        label: info.label().trim_end().to_owned(),
        manufacturer: info.manufacturer_id().trim_end().to_owned(),
        model: info.model().trim_end().to_owned(),
        serial: info.serial_number().trim_end().to_owned(),
        max_sessions: limit(info.max_session_count()),
        max_rw_sessions: limit(info.max_rw_session_count()),
        sessions: info.session_count(),
        user_pin_count_low: info.user_pin_count_low(),
        user_pin_final_try: info.user_pin_final_try(),
        user_pin_locked: info.user_pin_locked(),
        user_pin_to_be_changed: info.user_pin_to_be_changed(),
        so_pin_locked: info.so_pin_locked(),
        write_protected: info.write_protected(),
    })
}

fn check_mechanisms(ctx: &Pkcs11, slot: Slot, report: &mut Report) -> Result<()> {
    let offered = ctx
        .get_mechanism_list(slot)
        .map_err(|e| Error::from_ck(&e))?;
    for (mechanism, used_for, severity) in MECHANISMS {
        let present = offered.contains(&mechanism);
        if !present {
            report.add(
                severity,
                format!("mechanism {mechanism} is missing: no {used_for}"),
            );
        }
        report.mechanisms.push(MechanismCheck {
            mechanism: mechanism.to_string(),
            present,
            used_for,
        });
    }
    Ok(())
}

fn check_token(report: &mut Report) {
    let t = report.token.clone();
    if t.user_pin_locked {
        report.add(
            Severity::Problem,
            "the user PIN is locked: the security officer must unlock it",
        );
    } else if t.user_pin_final_try {
        report.add(
            Severity::Problem,
            "one more wrong user PIN locks the token: fix the PIN source before any login",
        );
    } else if t.user_pin_count_low {
        report.add(
            Severity::Warning,
            "the token reports wrong user PINs recently (PIN counter low)",
        );
    }
    if t.user_pin_to_be_changed {
        report.add(
            Severity::Warning,
            "the token asks for the user PIN to be changed",
        );
    }
    if t.so_pin_locked {
        report.add(Severity::Warning, "the security officer PIN is locked");
    }
    if t.write_protected {
        report.add(
            Severity::Warning,
            "the token is write-protected: imports will fail",
        );
    }
    match t.max_rw_sessions {
        Some(n) if n < 2 => report.add(
            Severity::Problem,
            format!("the token allows {n} read-write session(s): the pool needs 2 (one keeps the login)"),
        ),
        Some(n) => report.add(Severity::Info, format!("read-write sessions limited to {n}: pool size at most {}", n - 1)),
        None => {}
    }
}

/// One attribute with one `C_GetAttributeValue`: `None` when the token does not say.
fn read_bool(
    session: &Session,
    h: ObjectHandle,
    t: AttributeType,
) -> cryptoki::error::Result<Option<bool>> {
    let attrs = match session.get_attributes(h, &[t]) {
        Ok(a) => a,
        Err(CkError::Pkcs11(RvError::AttributeTypeInvalid | RvError::AttributeSensitive, _)) => {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    Ok(attrs.iter().find_map(crate::keys::template::flag))
}

/// Audits every secret and private key object visible to the application.
fn audit_keys(session: &Session) -> cryptoki::error::Result<Vec<KeyAudit>> {
    let mut managed_labels = Vec::new();
    for h in session.find_objects(&[
        Attribute::Class(ObjectClass::DATA),
        Attribute::Application(APPLICATION.to_vec()),
    ])? {
        for a in session.get_attributes(h, &[AttributeType::Label])? {
            if let Attribute::Label(l) = a {
                managed_labels.push(l);
            }
        }
    }
    let mut out = Vec::new();
    for (class, class_name) in [
        (ObjectClass::SECRET_KEY, "secret"),
        (ObjectClass::PRIVATE_KEY, "private"),
    ] {
        for h in session.find_objects(&[Attribute::Class(class)])? {
            let mut label = Vec::new();
            let mut id = Vec::new();
            let mut key_type = String::from("?");
            for t in [
                AttributeType::Label,
                AttributeType::Id,
                AttributeType::KeyType,
            ] {
                for a in session.get_attributes(h, &[t])? {
                    match a {
                        Attribute::Label(l) => label = l,
                        Attribute::Id(i) => id = i,
                        Attribute::KeyType(k) => key_type = k.to_string(),
                        _ => {}
                    }
                }
            }
            // A managed key's seal KEK (see `keys::seal`): unwrapping is its one use.
            let seal_of_managed = label
                .strip_suffix(crate::keys::seal::LABEL_SUFFIX.as_bytes())
                .is_some_and(|key| managed_labels.iter().any(|l| l == key));
            out.push(KeyAudit {
                label: String::from_utf8_lossy(&label).into_owned(),
                id: if id.is_empty() {
                    String::new()
                } else {
                    String::from_utf8(id.clone()).unwrap_or_else(|_| hex::encode(&id))
                },
                class: class_name.to_owned(),
                key_type,
                token_object: read_bool(session, h, AttributeType::Token)?.unwrap_or(true),
                managed: seal_of_managed || managed_labels.contains(&label),
                problems: key_problems(session, h, seal_of_managed)?,
            });
        }
    }
    Ok(out)
}

/// What is wrong with one key's protection. A seal KEK may unwrap (that is what it is for) but
/// must be neither modifiable nor copyable.
fn key_problems(
    session: &Session,
    h: ObjectHandle,
    seal_kek: bool,
) -> cryptoki::error::Result<Vec<String>> {
    let flag = |t| read_bool(session, h, t);
    let flags = KeyFlags {
        extractable: flag(AttributeType::Extractable)?,
        sensitive: flag(AttributeType::Sensitive)?,
        derive: flag(AttributeType::Derive)?,
        wrap: flag(AttributeType::Wrap)?,
        unwrap: flag(AttributeType::Unwrap)?,
        encrypt: flag(AttributeType::Encrypt)?,
        decrypt: flag(AttributeType::Decrypt)?,
        ..KeyFlags::default()
    };
    let mut problems: Vec<String> = flags
        .weaknesses()
        .into_iter()
        .filter(|(attribute, _)| !(seal_kek && *attribute == "CKA_UNWRAP"))
        .map(|(_, what)| what.to_owned())
        .collect();
    if seal_kek {
        for (t, what) in [
            (AttributeType::Modifiable, "seal KEK modifiable"),
            (AttributeType::Copyable, "seal KEK copyable"),
        ] {
            if flag(t)? != Some(false) {
                problems.push(what.to_owned());
            }
        }
    }
    if let Some(problem) = long_hmac_key(session, h) {
        problems.push(problem);
    }
    for t in [AttributeType::Value, AttributeType::PrivateExponent] {
        if let Ok(info) = session.get_attribute_info(h, &[t]) {
            if let Some(AttributeInfo::Available(n)) = info.first() {
                if *n > 0 {
                    problems.push(format!("{t} readable"));
                }
            }
        }
    }
    Ok(problems)
}

/// An HMAC key stored longer than its hash's block: HMAC keys with the hash of such a value, so
/// on a module that digests sensitive keys (`C_DigestKey`, SoftHSM2) that digest *is* the
/// effective key. The crate stores the hash itself since issue 26; older imports need a
/// rotation.
fn long_hmac_key(session: &Session, h: ObjectHandle) -> Option<String> {
    use cryptoki::mechanism::MechanismType;
    let attrs = session
        .get_attributes(
            h,
            &[AttributeType::ValueLen, AttributeType::AllowedMechanisms],
        )
        .ok()?;
    let mut len = None;
    let mut mechanisms = Vec::new();
    for a in attrs {
        match a {
            Attribute::ValueLen(n) => len = Some(u64::from(n)),
            Attribute::AllowedMechanisms(m) => mechanisms = m,
            _ => {}
        }
    }
    let len = len?;
    let block = |m: &MechanismType| {
        if *m == MechanismType::SHA256_HMAC {
            Some(64)
        } else if *m == MechanismType::SHA384_HMAC || *m == MechanismType::SHA512_HMAC {
            Some(128)
        } else {
            None
        }
    };
    let smallest = mechanisms.iter().filter_map(block).min()?;
    (len > smallest).then(|| {
        format!(
            "HMAC key stored as {len} bytes, longer than its hash's {smallest}-byte block: a module \
             that digests sensitive keys (C_DigestKey) hands out its effective HMAC key; rotate it \
             (`hsm-custody key rotate begin`: new versions store the hash)"
        )
    })
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = &self.module;
        writeln!(
            f,
            "module   {} ({} {}, {}, Cryptoki {})",
            m.path, m.library, m.library_version, m.manufacturer, m.cryptoki_version
        )?;
        let t = &self.token;
        let limit = |l: Option<u64>| l.map_or("no limit".to_owned(), |n| n.to_string());
        writeln!(
            f,
            "token    `{}` ({} {}, serial {})",
            t.label, t.manufacturer, t.model, t.serial
        )?;
        writeln!(
            f,
            "sessions max {}, max read-write {}, open now {}",
            limit(t.max_sessions),
            limit(t.max_rw_sessions),
            t.sessions.map_or("?".to_owned(), |n| n.to_string())
        )?;
        writeln!(
            f,
            "user PIN count low: {}, final try: {}, locked: {}",
            yes_no(t.user_pin_count_low),
            yes_no(t.user_pin_final_try),
            yes_no(t.user_pin_locked)
        )?;
        writeln!(f, "mechanisms")?;
        for c in &self.mechanisms {
            writeln!(
                f,
                "  {:<8} {:<32} {}",
                if c.present { "ok" } else { "MISSING" },
                c.mechanism,
                c.used_for
            )?;
        }
        if let Some(p) = &self.probe {
            writeln!(
                f,
                "enforces non-extractability: {}",
                yes_no(p.enforces_non_extractability)
            )?;
            for s in &p.steps {
                writeln!(
                    f,
                    "  {:<8} {:<44} {}",
                    if s.refused { "refused" } else { "ACCEPTED" },
                    s.attempt,
                    s.outcome
                )?;
            }
            writeln!(
                f,
                "  digests sensitive keys (C_DigestKey): {}",
                yes_no(p.digests_sensitive_keys)
            )?;
        }
        writeln!(f, "keys ({})", self.keys.len())?;
        for k in &self.keys {
            writeln!(
                f,
                "  {:<8} {:<24} {:<8} {:<16} {:<8} {}",
                if k.problems.is_empty() { "ok" } else { "WEAK" },
                k.label,
                k.class,
                k.key_type,
                if k.managed { "managed" } else { "foreign" },
                if k.problems.is_empty() {
                    "hardened".to_owned()
                } else {
                    k.problems.join(", ")
                }
            )?;
        }
        writeln!(f, "findings ({} problem(s))", self.problems())?;
        for x in &self.findings {
            let tag = match x.severity {
                Severity::Problem => "PROBLEM",
                Severity::Warning => "warning",
                Severity::Info => "info",
            };
            writeln!(f, "  {tag:<8} {}", x.message)?;
        }
        Ok(())
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}
