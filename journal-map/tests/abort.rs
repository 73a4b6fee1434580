//! Stores into the mapping survive the process being killed: the bytes are the page cache's,
//! not the process's (a `write(2)` would give the same; a buffer in the process would not).

use std::fs::OpenOptions;
use std::process::Command;

use journal_map::WriteMap;

const CHILD: &str = "JOURNAL_MAP_ABORT_CHILD";

#[test]
fn bytes_written_before_an_abort_are_in_the_file() {
    if let Ok(path) = std::env::var(CHILD) {
        // The child: write, then die without unwinding, unmapping or closing anything.
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        let mut map = WriteMap::new(&f, 1 << 16).unwrap();
        map.write(0, b"first record").unwrap();
        map.write(40_000, b"second record").unwrap();
        std::process::abort();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal");
    std::fs::write(&path, b"").unwrap();
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "bytes_written_before_an_abort_are_in_the_file",
            "--test-threads=1",
        ])
        .env(CHILD, &path)
        .status()
        .unwrap();
    assert!(!status.success(), "the child must die by abort");
    let data = std::fs::read(&path).unwrap();
    assert_eq!(data.len(), 1 << 16);
    assert_eq!(&data[..12], b"first record");
    assert_eq!(&data[40_000..40_013], b"second record");
}
