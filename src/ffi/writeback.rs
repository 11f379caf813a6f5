//! Writing a file's new pages to disk while it is being written (`sync_file_range`, Linux), so
//! that a large copy never leaves hundreds of MB for one final flush, which every other
//! writer's `fsync` on the same file system would then wait behind. Neither call makes the data
//! durable (no metadata, no disk cache flush): the final `fdatasync` still does.

use std::fs::File;
use std::io;

/// Starts writing `len` bytes of `file` at `offset` to disk, without waiting for them.
#[cfg(target_os = "linux")]
pub(crate) fn start(file: &File, offset: u64, len: u64) -> io::Result<()> {
    sync_range(file, offset, len, libc::SYNC_FILE_RANGE_WRITE)
}

/// Waits until `len` bytes of `file` at `offset` are on disk (starting what is not yet).
#[cfg(target_os = "linux")]
pub(crate) fn wait(file: &File, offset: u64, len: u64) -> io::Result<()> {
    sync_range(
        file,
        offset,
        len,
        libc::SYNC_FILE_RANGE_WAIT_BEFORE
            | libc::SYNC_FILE_RANGE_WRITE
            | libc::SYNC_FILE_RANGE_WAIT_AFTER,
    )
}

#[cfg(target_os = "linux")]
fn sync_range(file: &File, offset: u64, len: u64, flags: libc::c_uint) -> io::Result<()> {
    use std::os::fd::AsRawFd;

    // A length of 0 would mean "to the end of the file".
    let (Ok(offset), Ok(len @ 1..)) = (
        libc::off64_t::try_from(offset),
        libc::off64_t::try_from(len),
    ) else {
        return Ok(());
    };
    // SAFETY: an open descriptor, borrowed for the call; the call reads no memory of ours.
    let rc = unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, flags) };
    match rc {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Elsewhere nothing is started early: the final flush writes everything.
#[cfg(not(target_os = "linux"))]
pub(crate) fn start(_file: &File, _offset: u64, _len: u64) -> io::Result<()> {
    Ok(())
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn wait(_file: &File, _offset: u64, _len: u64) -> io::Result<()> {
    Ok(())
}
