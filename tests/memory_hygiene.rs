//! Memory hygiene (issue 6): import a secret made at run time, sign, drop everything, then scan
//! every readable byte of this process (`/proc/self/maps` + `/proc/self/mem`) for the secret,
//! the user PIN and the SO PIN. Copies in heap or stack, made by our code or by a dependency
//! (cryptoki, SoftHSM2, OpenSSL, the `hmac` crate), all count.
//!
//! Its own test binary with one test, so no other test's data is in memory. The needles are held
//! only XOR-masked, so the scanner never puts a plain copy in memory itself; a needle counts as
//! found when any 16-byte window of it (12 for PINs) is, so a freed copy whose first bytes the
//! allocator overwrote is still caught.
//!
//! Proof that the scan can fail: a control copy is made, must be found, is wiped, must be gone;
//! and `cargo test --features danger-skip-wipe-for-tests --test memory_hygiene` turns off the
//! wipe of the import template, and then this test passes only if the scan FINDS the secret.

#![deny(unsafe_code)] // test-side unsafe lives in tests/support/raw_pkcs11.rs

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use hsm_custody::{Config, Custody, HmacAlg, KeySpec, SecretString};
use zeroize::Zeroize;

#[path = "support/softhsm_dir.rs"]
mod softhsm_dir;
use softhsm_dir::write_softhsm_conf;

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A value to look for, held only as `masked` = value XOR `mask`.
struct Needle {
    name: &'static str,
    masked: Vec<u8>,
    mask: Vec<u8>,
    window: usize,
}

impl Needle {
    /// Makes a random alphanumeric value of `len` bytes; returns it as a `SecretString` (the
    /// only plain copy, moved without reallocation) and the masked needle.
    fn random(name: &'static str, len: usize, window: usize) -> (SecretString, Needle) {
        let mut plain = Vec::with_capacity(len);
        let mut mask = vec![0u8; len];
        let mut random = vec![0u8; len];
        let mut urandom = File::open("/dev/urandom").unwrap();
        urandom.read_exact(&mut random).unwrap();
        urandom.read_exact(&mut mask).unwrap();
        for r in &random {
            plain.push(ALPHABET[*r as usize % ALPHABET.len()]);
        }
        random.zeroize();
        let masked: Vec<u8> = plain.iter().zip(&mask).map(|(p, m)| p ^ m).collect();
        assert_eq!(
            plain.capacity(),
            plain.len(),
            "no reallocation moves the plain copy"
        );
        let text = String::from_utf8(plain).unwrap();
        let secret = SecretString::from(text);
        (
            secret,
            Needle {
                name,
                masked,
                mask,
                window,
            },
        )
    }

    /// Window start offsets (every 4 bytes).
    fn windows(&self) -> impl Iterator<Item = usize> + '_ {
        (0..=self.masked.len() - self.window).step_by(4)
    }

    /// Whether window `w` of the needle starts at `hay[i..]`, comparing byte by byte.
    fn matches(&self, hay: &[u8], i: usize, w: usize) -> bool {
        hay.len() >= i + self.window
            && (0..self.window).all(|j| hay[i + j] ^ self.mask[w + j] == self.masked[w + j])
    }

    /// A deliberate plain copy, for the control.
    fn materialise(&self) -> Vec<u8> {
        self.masked
            .iter()
            .zip(&self.mask)
            .map(|(a, b)| a ^ b)
            .collect()
    }
}

/// One place a needle was found.
#[derive(Debug)]
struct Hit {
    needle: &'static str,
    region: String,
    address: u64,
    offset_in_region: u64,
    window: usize,
}

/// Scans every readable mapping for every window of every needle.
fn scan(needles: &[&Needle]) -> Vec<Hit> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let mem = File::open("/proc/self/mem").unwrap();
    // First two bytes of each window, as a 65,536-entry table of flags (no run of needle bytes
    // is ever in memory).
    let mut first = vec![false; 1 << 16];
    for n in needles {
        for w in n.windows() {
            let a = (n.masked[w] ^ n.mask[w]) as usize;
            let b = (n.masked[w + 1] ^ n.mask[w + 1]) as usize;
            first[a << 8 | b] = true;
        }
    }
    let overlap = 64;
    let chunk = 1 << 20;
    let mut buf = vec![0u8; chunk + overlap];
    let mut hits = Vec::new();
    for line in maps.lines() {
        let mut parts = line.split_whitespace();
        let (Some(range), Some(perms)) = (parts.next(), parts.next()) else {
            continue;
        };
        let path = parts.nth(3).unwrap_or("[anonymous]").to_owned();
        if !perms.starts_with('r')
            || path == "[vvar]"
            || path == "[vsyscall]"
            || path == "[vvar_vclock]"
        {
            continue;
        }
        let (start, end) = range.split_once('-').unwrap();
        let start = u64::from_str_radix(start, 16).unwrap();
        let end = u64::from_str_radix(end, 16).unwrap();
        let mut at = start;
        while at < end {
            let len = ((end - at) as usize).min(chunk + overlap);
            buf[..len].fill(0);
            let Ok(got) = mem.read_at(&mut buf[..len], at) else {
                at += chunk as u64;
                continue;
            };
            let hay = &buf[..got];
            for i in 0..hay.len().saturating_sub(1) {
                if !first[(hay[i] as usize) << 8 | hay[i + 1] as usize] {
                    continue;
                }
                for n in needles {
                    for w in n.windows() {
                        if n.matches(hay, i, w) {
                            hits.push(Hit {
                                needle: n.name,
                                region: format!("{range} {perms} {path}"),
                                address: at + i as u64,
                                offset_in_region: at + i as u64 - start,
                                window: w,
                            });
                        }
                    }
                }
            }
            at += chunk as u64;
        }
    }
    buf.zeroize();
    first.zeroize();
    // One hit per needle and address (windows of one copy overlap).
    hits.sort_by_key(|h| (h.needle, h.address - h.window as u64));
    hits.dedup_by_key(|h| (h.needle, h.address - h.window as u64));
    hits
}

fn setup_softhsm() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("hsm-custody-memscan-")
        .tempdir()
        .unwrap();
    let conf = write_softhsm_conf(dir.path());
    // Edition 2021, one test in this binary, before the module is loaded.
    std::env::set_var("SOFTHSM2_CONF", &conf);
    let module = std::env::var_os("HSM_CUSTODY_TEST_MODULE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(MODULE));
    (dir, module)
}

fn report(hits: &[Hit]) -> String {
    hits.iter()
        .map(|h| {
            format!(
                "  {} at {:#x} (window {}), region {} + {:#x}",
                h.needle, h.address, h.window, h.region, h.offset_in_region
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn no_secret_or_pin_is_left_in_process_memory() {
    let (_dir, module) = setup_softhsm();
    // 128 bytes, like the longer exchange secrets (Kraken's): a heap block of a size that
    // signing does not reuse at once, so that with the wipe disabled the freed template copy
    // survives (its first 16 bytes become allocator pointers) and the negative control is not
    // left to luck. For HMAC-SHA512 it is within the hash's block, so the token stores the
    // secret itself (a longer one is stored as its hash, and never reaches a template).
    let (secret, secret_needle) = Needle::random("secret", 128, 16);
    let (user_pin, pin_needle) = Needle::random("user PIN", 24, 12);
    let (so_pin, so_needle) = Needle::random("SO PIN", 24, 12);
    let needles = [&secret_needle, &pin_needle, &so_needle];

    // Everything is made and dropped in this block, on the test's own thread, whose heap
    // arena stays in place for the scan (a thread that exits may have its arena trimmed, which
    // would hide freed copies instead of proving they were wiped).
    let label = format!("memscan-{}", std::process::id());
    let after_import;
    {
        hsm_custody::admin::init_token(&module, &label, &so_pin, &user_pin).unwrap();
        let custody = Custody::connect(Config::new(&module, &label).pin(user_pin)).unwrap();
        custody
            .import_hmac_secret(
                KeySpec::hmac("k").algorithms(&[HmacAlg::HmacSha512]),
                secret,
            )
            .unwrap();
        // While the key is in use, the secret must already be gone from this process: it is
        // in the token only. (The PINs are alive here: the token keeps the user PIN to log in
        // again, the SO PIN is still ours.)
        after_import = scan(&[&secret_needle]);
        for alg in [HmacAlg::HmacSha512] {
            for n in 0..50 {
                custody
                    .sign_hmac("k", alg, format!("n={n}").as_bytes())
                    .unwrap();
            }
        }
        custody.list_keys().unwrap();
        drop(custody);
        drop(so_pin);
    }

    let hits = scan(&needles);
    let wipe_disabled = cfg!(feature = "danger-skip-wipe-for-tests");
    println!(
        "memory scan right after import, key in use (wipe {}): {} hit(s)\n{}",
        if wipe_disabled { "DISABLED" } else { "enabled" },
        after_import.len(),
        report(&after_import)
    );
    println!(
        "memory scan after drop (wipe {}): {} hit(s)\n{}",
        if wipe_disabled { "DISABLED" } else { "enabled" },
        hits.len(),
        report(&hits)
    );

    // Control: the scanner finds a deliberate copy, and does not once it is wiped.
    let mut control = secret_needle.materialise();
    let found = scan(&[&secret_needle]);
    let control_address = control.as_ptr() as u64;
    assert!(
        found.iter().any(|h| h.address == control_address),
        "the scanner missed a deliberate copy at {control_address:#x}:\n{}",
        report(&found)
    );
    control.zeroize();
    let after_wipe = scan(&[&secret_needle]);
    assert!(
        !after_wipe.iter().any(|h| h.address == control_address),
        "the scanner still sees the wiped control copy"
    );

    if wipe_disabled {
        assert!(
            after_import.iter().any(|h| h.needle == "secret"),
            "with the wipe disabled the scan must find the secret after import; it did not"
        );
    } else {
        assert!(
            after_import.is_empty(),
            "the secret is still in memory after import:\n{}",
            report(&after_import)
        );
        assert!(
            hits.is_empty(),
            "secret material left in memory:\n{}",
            report(&hits)
        );
    }
}
