//! Where the PIN comes from: code, a file, or an environment variable.

use std::fs;
use std::path::Path;

use secrecy::SecretString;

use super::{ENV_PIN, ENV_PIN_FILE};
use crate::error::{Error, Result};

/// Where a [`crate::Config`]'s PIN came from (see [`crate::Config::pin_source`]).
///
/// A PIN taken from the environment stays in `/proc/<pid>/environ` for the life of the process,
/// readable by every process of the same uid: the signing agent refuses it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PinSource {
    /// No PIN configured.
    None,
    /// Given in code ([`crate::Config::pin`]).
    Code,
    /// Read from a file ([`crate::Config::pin_file`], `pin_file` in TOML, `HSM_CUSTODY_PIN_FILE`).
    File,
    /// Read from this environment variable (`HSM_CUSTODY_PIN`, or the one `pin_env` names).
    Env(String),
}

/// The PIN named by the environment, and where it came from: `HSM_CUSTODY_PIN_FILE` wins over
/// `HSM_CUSTODY_PIN`.
pub(crate) fn pin_from_env() -> Result<Option<(SecretString, PinSource)>> {
    if let Some(path) = std::env::var_os(ENV_PIN_FILE).filter(|p| !p.is_empty()) {
        return read_pin_file(Path::new(&path)).map(|pin| Some((pin, PinSource::File)));
    }
    Ok(std::env::var(ENV_PIN)
        .ok()
        .filter(|p| !p.is_empty())
        .map(|pin| (SecretString::from(pin), PinSource::Env(ENV_PIN.to_owned()))))
}

/// Reads a PIN file; refuses a file that every user may read.
pub(crate) fn read_pin_file(path: &Path) -> Result<SecretString> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = fs::metadata(path).map_err(|source| Error::ConfigFile {
            what: "PIN file",
            path: path.to_owned(),
            source,
        })?;
        if meta.permissions().mode() & 0o004 != 0 {
            return Err(Error::Config(format!(
                "PIN file `{}` is readable by every user; run `chmod 600` on it",
                path.display()
            )));
        }
    }
    // Bounded read: a PIN is short, and a path such as `/dev/zero` must give an error, not
    // exhaust memory (found by the config fuzz target).
    const MAX_PIN_FILE: u64 = 1024;
    let io = |source| Error::ConfigFile {
        what: "PIN file",
        path: path.to_owned(),
        source,
    };
    let mut bytes = zeroize::Zeroizing::new(Vec::with_capacity(MAX_PIN_FILE as usize + 1));
    {
        use std::io::Read;
        fs::File::open(path)
            .map_err(io)?
            .take(MAX_PIN_FILE + 1)
            .read_to_end(&mut bytes)
            .map_err(io)?;
    }
    if bytes.len() as u64 > MAX_PIN_FILE {
        return Err(Error::Config(format!(
            "PIN file `{}` is longer than {MAX_PIN_FILE} bytes: is it the right file?",
            path.display()
        )));
    }
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| Error::Config(format!("PIN file `{}` is not UTF-8", path.display())))?;
    let pin = text.trim_end_matches(['\r', '\n']);
    if pin.is_empty() {
        return Err(Error::Config(format!(
            "PIN file `{}` is empty",
            path.display()
        )));
    }
    Ok(SecretString::from(pin))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn oversized_pin_file_is_refused_after_a_bounded_read() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let pin = dir.path().join("pin");
        fs::write(&pin, vec![b'1'; 2000]).unwrap();
        fs::set_permissions(&pin, fs::Permissions::from_mode(0o600)).unwrap();
        let err = read_pin_file(&pin).unwrap_err().to_string();
        assert!(err.contains("longer than 1024 bytes"), "{err}");
        fs::write(&pin, "1234\n").unwrap();
        assert!(read_pin_file(&pin).is_ok());
    }

    #[test]
    fn world_readable_pin_file_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let pin = dir.path().join("pin");
        fs::write(&pin, "9876").unwrap();
        fs::set_permissions(&pin, fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_pin_file(&pin).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }
}
