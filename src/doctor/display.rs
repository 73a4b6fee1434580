//! The human-readable report (`hsm-custody doctor` without `--json`).

use std::fmt;

use super::{Report, Severity};

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
