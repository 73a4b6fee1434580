//! A copy of a PKCS#11 module file, loadable as one more instance of it (`Config::module_copies`).

use std::path::{Path, PathBuf};

/// Copies `module` to `to` with mode 0644 (a copy others can write is refused) and returns `to`.
#[allow(dead_code)] // not every binary that includes this file uses it
pub fn module_copy(module: &Path, to: PathBuf) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::copy(module, &to).expect("copy the module");
    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o644)).expect("chmod the copy");
    to
}
