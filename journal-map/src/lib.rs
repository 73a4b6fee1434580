//! The first bytes of a file mapped shared and writable, written through a bounds-checked safe
//! API and never read through the mapping.
//!
//! hsm-custody's audit log stages its lines in a journal file while signatures are made in
//! quick succession, so that a line costs a copy instead of a `write(2)`. A store into a shared
//! mapping of a file lands in the kernel's page cache, so it survives a crash of the process
//! (not of the host) exactly as a `write(2)` would. Mapping a file needs `unsafe`, which
//! hsm-custody forbids; this crate holds it.
//!
//! Why the API is safe:
//! - No reference to the mapped bytes is ever made: [`WriteMap::write`] copies through a raw
//!   pointer, after checking the range, so nothing in Rust assumes the bytes keep a value
//!   another process could change under it. The crate never reads through the mapping (read the
//!   file with `read(2)`).
//! - The mapping lives as long as the [`WriteMap`]; it is unmapped on drop. It keeps the file's
//!   inode alive even if the file is renamed or deleted.
//!
//! What remains, and is the caller's to prevent: if another process **truncates** the file
//! below the mapped length, the next store into the cut-off part raises `SIGBUS`, which ends
//! the process (it does not corrupt memory). Keep the file private to the process's user. A
//! file must not be sparse either: a store that needs a block on a full disk raises `SIGBUS`
//! too, so [`WriteMap::new`] allocates the blocks first.
#![deny(unsafe_op_in_unsafe_fn)]

use std::fs::File;
use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{compiler_fence, Ordering};

use rustix::mm::{mmap, munmap, MapFlags, ProtFlags};

/// A shared, writable mapping of a file's first `len` bytes.
pub struct WriteMap {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; writes need `&mut self`.
unsafe impl Send for WriteMap {}

impl std::fmt::Debug for WriteMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteMap").field("len", &self.len).finish()
    }
}

/// A write that would end past the mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfBounds;

impl std::fmt::Display for OutOfBounds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("write past the end of the mapped file")
    }
}

impl std::error::Error for OutOfBounds {}

impl WriteMap {
    /// Maps the first `len` bytes of `file` (opened for reading and writing), shared. The file
    /// is first made at least `len` bytes long with its blocks allocated (`fallocate`, or zeros
    /// written where the file system has none), so that no store into the mapping can fail
    /// for want of a block.
    ///
    /// # Errors
    /// `len` is 0 or too large to map, the file cannot be extended, or `mmap` fails.
    pub fn new(file: &File, len: usize) -> io::Result<WriteMap> {
        if len == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty mapping"));
        }
        allocate(file, len as u64)?;
        // SAFETY: a fresh mapping (no address hint) of a file we hold open, `len` bytes, all of
        // them inside the file (just allocated). Nothing else in this process aliases it.
        let ptr = unsafe {
            mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                file,
                0,
            )
        }?;
        let ptr = NonNull::new(ptr.cast::<u8>())
            .ok_or_else(|| io::Error::other("mmap returned a null pointer"))?;
        Ok(WriteMap { ptr, len })
    }

    /// The mapped length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: an empty mapping cannot be made.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Copies `bytes` into the file at `offset`. The stores of one call may land in any order;
    /// those of an earlier call land before those of a later one (the compiler may not move
    /// them across calls), so a process that dies between two calls leaves the first call's
    /// bytes complete in the file.
    ///
    /// # Errors
    /// [`OutOfBounds`] when the range ends past the mapping; nothing is written then.
    pub fn write(&mut self, offset: usize, bytes: &[u8]) -> Result<(), OutOfBounds> {
        let end = offset.checked_add(bytes.len()).ok_or(OutOfBounds)?;
        if end > self.len {
            return Err(OutOfBounds);
        }
        compiler_fence(Ordering::SeqCst);
        // SAFETY: `offset..end` lies inside the mapping (checked above), which is valid for
        // writes while `self` lives; `bytes` is ordinary memory and cannot overlap the mapping
        // (no reference into it is ever handed out).
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.ptr.as_ptr().add(offset),
                bytes.len(),
            );
        }
        compiler_fence(Ordering::SeqCst);
        Ok(())
    }
}

impl Drop for WriteMap {
    fn drop(&mut self) {
        // SAFETY: the pointer and length are those `mmap` returned, unmapped once, here; no
        // reference into the mapping outlives this value.
        let _ = unsafe { munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Makes `file` at least `len` bytes long with every block of them allocated.
fn allocate(file: &File, len: u64) -> io::Result<()> {
    use rustix::fs::{fallocate, FallocateFlags};
    let have = file.metadata()?.len();
    match fallocate(file, FallocateFlags::empty(), 0, len) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::OPNOTSUPP || e == rustix::io::Errno::NOSYS => {
            // No fallocate here (tmpfs before 3.5, some FUSE): write zeros past the end.
            if have < len {
                use std::io::{Seek, SeekFrom, Write};
                let mut f = file;
                f.seek(SeekFrom::Start(have))?;
                let zeros = vec![0u8; 64 * 1024];
                let mut left = len - have;
                while left > 0 {
                    let n = left.min(zeros.len() as u64) as usize;
                    f.write_all(&zeros[..n])?;
                    left -= n as u64;
                }
            }
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;

    fn file(dir: &tempfile::TempDir) -> (std::path::PathBuf, File) {
        let path = dir.path().join("journal");
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .unwrap();
        (path, f)
    }

    #[test]
    fn writes_land_in_the_file_and_the_file_is_sized() {
        let dir = tempfile::tempdir().unwrap();
        let (path, f) = file(&dir);
        let mut map = WriteMap::new(&f, 8192).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 8192);
        map.write(4090, b"hello, journal").unwrap();
        let data = std::fs::read(&path).unwrap();
        assert_eq!(&data[4090..4104], b"hello, journal");
        assert!(data[..4090].iter().all(|b| *b == 0));
        // Allocated, not sparse: every block of the length is on the disk.
        use std::os::unix::fs::MetadataExt;
        assert!(std::fs::metadata(&path).unwrap().blocks() * 512 >= 8192);
    }

    #[test]
    fn a_write_past_the_end_is_refused_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (path, f) = file(&dir);
        let mut map = WriteMap::new(&f, 4096).unwrap();
        assert_eq!(map.write(4090, b"too long"), Err(OutOfBounds));
        assert_eq!(map.write(usize::MAX, b"x"), Err(OutOfBounds));
        map.write(4088, b"fits it!").unwrap();
        let data = std::fs::read(&path).unwrap();
        assert_eq!(data.len(), 4096);
        assert_eq!(&data[4088..], b"fits it!");
    }

    #[test]
    fn an_empty_mapping_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (_, f) = file(&dir);
        assert!(WriteMap::new(&f, 0).is_err());
    }

    #[test]
    fn a_longer_file_keeps_its_length_and_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (path, f) = file(&dir);
        std::fs::write(&path, vec![7u8; 10_000]).unwrap();
        let mut map = WriteMap::new(&f, 4096).unwrap();
        map.write(0, b"ab").unwrap();
        let data = std::fs::read(&path).unwrap();
        assert_eq!(data.len(), 10_000);
        assert_eq!(&data[..3], b"ab\x07");
    }
}
