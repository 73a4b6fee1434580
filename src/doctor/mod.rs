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
//! - flags keys the audit log records no use of for `[hygiene] unused_after_days` and keys whose
//!   active version is older than `rotate_after_days` (warnings; see `hygiene`).
//!
//! Values are never read: a readable `CKA_VALUE` is detected from its reported length.

use cryptoki::context::Pkcs11;
use cryptoki::mechanism::MechanismType;
use cryptoki::slot::{Limit, Slot};
use serde::Serialize;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::token::probe::probe;
pub use crate::token::probe::{Probe, ProbeStep};

mod display;
mod hygiene;
mod keys;

use crate::token::{find_slot, module, Token};
use keys::audit_keys;

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
    let audit_key = config
        .audit_section()
        .and_then(|a| a.key.clone())
        .unwrap_or_else(|| crate::keys::DEFAULT_AUDIT_KEY.to_owned());
    match crate::keys::store::list(session) {
        Ok(keys) => hygiene::check(
            &mut report,
            &keys,
            &hygiene::Usage::read(config),
            config,
            &audit_key,
            time::OffsetDateTime::now_utc(),
        ),
        Err(e) => report.add(
            Severity::Warning,
            format!("key metadata not read, unused and old keys not checked: {e}"),
        ),
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
