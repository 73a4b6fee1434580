//! The one list of exchanges ([`ALL`]): one [`ExchangeInfo`] per exchange id, each written in
//! its exchange's file beside the signer it describes (`kraken.rs` holds `kraken::INFO`), and
//! listed here once. Everything else is derived from it: the ids ([`super::all_ids`]), key
//! profiles ([`super::profile`]), built-in signers ([`super::by_id`]), which ids share keys
//! ([`same_keys`], read by the Binance signers' key binding), API hosts, the withdrawal guard's
//! tables (`policy::withdrawal`), the table in `docs/guardrails.md` and the ccxt table of the
//! Python adapter (`python/hsm_custody/ccxt.py`), both checked by unit tests below.
//!
//! Why a table of data, and not `&[&dyn Exchange]` with the facts as trait methods: [`Exchange`]
//! is the public trait a user implements for their own exchange, while these are the crate's
//! facts about its built-in ids, which the policy reads by id. Kept out of the trait, a
//! user's exchange cannot bring its own (empty) withdrawal table, and the whole list reads as
//! one table.

use std::sync::Arc;

use super::reach::{Binding, EndpointFrom};
use super::{
    binance, bitfinex, bitget, bitmex, bitstamp, bybit, coinbase, coinbase_advanced, cryptocom,
    deribit, gate, gemini, htx, kraken, kucoin, mexc, okx, Exchange,
};
use crate::keys::SecretEncoding;
use crate::sign::HmacAlg;

/// An endpoint that moves funds out of the account or between accounts: the withdrawal guard
/// refuses it unless the key's policy allows withdrawals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Guarded {
    /// The path, `*` standing for one segment (API version, currency); matched without regard
    /// to case or method.
    pub path: &'static str,
    /// The parameters the endpoint requires (documented): where the exchange does not sign the
    /// path, a request carrying all of them is refused as this endpoint.
    pub required: &'static [&'static str],
}

/// A guarded endpoint known by its path (exchanges that sign the path).
pub(super) const fn g(path: &'static str) -> Guarded {
    Guarded {
        path,
        required: &[],
    }
}

/// A guarded endpoint with its required parameters (exchanges that do not sign the path).
pub(super) const fn gp(path: &'static str, required: &'static [&'static str]) -> Guarded {
    Guarded { path, required }
}

/// One exchange id: everything the crate knows about it besides how to sign.
#[non_exhaustive]
pub struct ExchangeInfo {
    /// The id keys are bound to.
    pub id: &'static str,
    /// The ids of one family take each other's keys (one Binance API key serves `binance`,
    /// `binance-usdm`, `binance-coinm` and `binance-ws`); an id alone in its family takes only its own.
    pub key_family: &'static str,
    /// The ccxt exchange ids that the Python adapter (`hsm_custody.ccxt`) signs as this id
    /// (empty: none; ccxt's raw mode still works).
    pub ccxt: &'static [&'static str],
    /// How the exchange shows its secrets.
    pub encoding: SecretEncoding,
    /// The HMAC algorithms its scheme uses (empty: asymmetric keys only).
    pub algorithms: &'static [HmacAlg],
    /// Whether the scheme takes asymmetric keys (all of its keys, when `algorithms` is empty).
    pub asymmetric: bool,
    /// What the signature binds.
    pub binding: Binding,
    /// Where the guard reads the endpoint.
    pub endpoint_from: EndpointFrom,
    /// The inputs the crate owns or checks, for the documentation.
    pub owned: &'static str,
    /// The exchange's API hosts (the signed host must be one of them, or a test host).
    pub hosts: &'static [&'static str],
    /// Endpoints the withdrawal guard refuses.
    pub guarded: &'static [Guarded],
    /// Makes the built-in signer.
    pub(super) signer: fn() -> Arc<dyn Exchange>,
}

impl ExchangeInfo {
    /// The built-in signer.
    pub fn signer(&self) -> Arc<dyn Exchange> {
        (self.signer)()
    }
}

impl std::fmt::Debug for ExchangeInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExchangeInfo")
            .field("id", &self.id)
            .field("binding", &self.binding)
            .field("endpoint_from", &self.endpoint_from)
            .finish_non_exhaustive()
    }
}

/// The algorithm lists of the HMAC schemes.
pub(super) const SHA256: &[HmacAlg] = &[HmacAlg::HmacSha256];
pub(super) const SHA384: &[HmacAlg] = &[HmacAlg::HmacSha384];
pub(super) const SHA512: &[HmacAlg] = &[HmacAlg::HmacSha512];

/// Every exchange the crate signs for, in the order `hsm-custody sign-request --help` lists them.
pub static ALL: &[&ExchangeInfo] = &[
    &binance::SPOT_INFO,
    &binance::USDM_INFO,
    &binance::COINM_INFO,
    &binance::WS_INFO,
    &kraken::INFO,
    &coinbase::INFO,
    &coinbase_advanced::INFO,
    &okx::INFO,
    &bybit::INFO,
    &bitget::INFO,
    &kucoin::INFO,
    &gemini::INFO,
    &bitmex::INFO,
    &bitfinex::INFO,
    &gate::INFO,
    &deribit::INFO,
    &htx::INFO,
    &cryptocom::INFO,
    &bitstamp::INFO,
    &mexc::INFO,
    &mexc::FUTURES_INFO,
];

/// The entry for `id`.
pub fn info(id: &str) -> Option<&'static ExchangeInfo> {
    ALL.iter().copied().find(|e| e.id == id)
}

/// Whether a key bound to exchange `bound` may sign for exchange `id`: the same id, or two ids
/// of one key family.
pub(super) fn same_keys(id: &str, bound: &str) -> bool {
    id == bound
        || matches!((info(id), info(bound)), (Some(a), Some(b)) if a.key_family == b.key_family)
}

/// The `docs/guardrails.md` table: one row per exchange id (checked by a unit test).
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn markdown_table() -> String {
    let mut out = String::from(
        "| exchange id | the signature binds | the guard reads the endpoint from | inputs the crate owns or checks | guarded endpoints |\n|---|---|---|---|---|\n",
    );
    for e in ALL {
        let from = match e.endpoint_from {
            EndpointFrom::Path => "the signed path".to_owned(),
            EndpointFrom::BodyMember(m) => format!("body member `{m}` (must equal the path)"),
            EndpointFrom::Params => {
                "the parameter set (path not signed): every guarded endpoint whose required parameters are present".to_owned()
            }
            #[allow(unreachable_patterns)]
            _ => "?".to_owned(),
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            e.id,
            e.binding.describe().replace(',', ", "),
            from,
            e.owned,
            e.guarded.len()
        ));
    }
    out
}

/// The ccxt table of the Python adapter (`_SCHEMES` in `python/hsm_custody/ccxt.py`) as
/// `(ccxt id, crate id)` pairs, sorted: each entry's key, with the ids of every `_Scheme("id", ...)`
/// it names, directly or through a module-level `_NAME = _Scheme("id", ...)`. Parsed rather than
/// generated, as `errors.py` is by the agent's protocol test: the package stays plain source.
#[cfg(test)]
fn python_ccxt_table(source: &str) -> Vec<(String, String)> {
    /// The ids of the `_Scheme("id"` calls in `text`.
    fn scheme_ids(text: &str) -> Vec<&str> {
        text.split("_Scheme(\"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .collect()
    }
    /// The `_UPPER_CASE` names in `text`.
    fn names(text: &str) -> Vec<&str> {
        text.split(|c: char| !(c.is_ascii_uppercase() || c == '_'))
            .filter(|w| w.len() > 1 && w.starts_with('_'))
            .collect()
    }
    let variables: Vec<(&str, &str)> = source
        .lines()
        .filter_map(|l| {
            let (name, value) = l.split_once(" = _Scheme(")?;
            let id = value.strip_prefix('"')?.split('"').next()?;
            Some((name, id))
        })
        .collect();
    let start = source
        .find("\n_SCHEMES: ")
        .expect("ccxt.py defines _SCHEMES");
    let table = &source[start..];
    let table = &table[table.find("{\n").expect("_SCHEMES = {") + 2..table.find("\n}").unwrap()];
    let mut entries: Vec<(String, String)> = Vec::new();
    let mut pairs = Vec::new();
    for line in table.lines() {
        match line.strip_prefix("    \"") {
            // An entry: `    "ccxt-id": ...` (continued on more deeply indented lines).
            Some(rest) => entries.push((
                rest.split('"').next().unwrap_or_default().to_owned(),
                line.to_owned(),
            )),
            None => {
                let last = entries
                    .last_mut()
                    .expect("an entry before its continuation");
                last.1.push_str(line);
            }
        }
    }
    for (ccxt, text) in &entries {
        let mut ids: Vec<&str> = scheme_ids(text);
        for name in names(text) {
            ids.extend(
                variables
                    .iter()
                    .filter(|(n, _)| *n == name)
                    .map(|(_, id)| *id),
            );
        }
        assert!(!ids.is_empty(), "ccxt.py: no scheme for `{ccxt}`");
        pairs.extend(ids.into_iter().map(|id| (ccxt.clone(), id.to_owned())));
    }
    pairs.sort();
    pairs.dedup();
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guardrails_doc_shows_the_registry() {
        let doc = include_str!("../../docs/guardrails.md");
        let begin = "<!-- exchange-table:begin -->\n";
        let end = "<!-- exchange-table:end -->";
        let start = doc.find(begin).expect("begin marker") + begin.len();
        let stop = doc.find(end).expect("end marker");
        let table = markdown_table();
        if doc[start..stop] != table {
            // Print the table to paste: `cargo test --lib the_guardrails_doc -- --nocapture`.
            println!("{table}");
            panic!("docs/guardrails.md's exchange table differs from the registry");
        }
    }

    #[test]
    fn every_id_is_listed_once_with_a_signer_and_hosts() {
        for (i, e) in ALL.iter().enumerate() {
            assert!(ALL[..i].iter().all(|o| o.id != e.id), "{} twice", e.id);
            assert_eq!(e.signer().id(), e.id);
            assert!(!e.hosts.is_empty() && !e.guarded.is_empty(), "{}", e.id);
            let unbound = e.endpoint_from == EndpointFrom::Params;
            if e.endpoint_from != EndpointFrom::Path {
                assert!(!e.binding.path || !unbound, "{}", e.id);
            } else {
                assert!(e.binding.path, "{}", e.id);
            }
            assert!(!unbound || !e.binding.path, "{}", e.id);
            // Where the path is not signed, every guarded endpoint lists its parameters.
            assert!(
                !unbound || e.guarded.iter().all(|g| !g.required.is_empty()),
                "{}",
                e.id
            );
        }
    }

    /// The Python adapter signs exactly the ccxt ids the registry names, each as the crate id
    /// the registry gives it: an exchange added on one side only fails here.
    #[test]
    fn the_python_ccxt_table_matches_the_registry() {
        let python = python_ccxt_table(include_str!("../../python/hsm_custody/ccxt.py"));
        let mut registry: Vec<(String, String)> = ALL
            .iter()
            .flat_map(|e| e.ccxt.iter().map(|c| ((*c).to_owned(), e.id.to_owned())))
            .collect();
        registry.sort();
        assert_eq!(
            python, registry,
            "python/hsm_custody/ccxt.py _SCHEMES (left) and the registry's `ccxt` ids (right)"
        );
    }

    #[test]
    fn key_families_are_ids_and_only_binance_shares_keys() {
        for e in ALL {
            assert!(info(e.key_family).is_some(), "{}", e.id);
            assert!(same_keys(e.id, e.id), "{}", e.id);
        }
        assert!(same_keys("binance-ws", "binance-usdm") && same_keys("binance", "binance-ws"));
        assert!(
            same_keys("binance-coinm", "binance") && same_keys("binance-usdm", "binance-coinm")
        );
        assert!(!same_keys("mexc", "mexc-futures") && !same_keys("binance", "mexc"));
        assert!(!same_keys("binance", "nope") && !same_keys("nope", "binance"));
    }
}
