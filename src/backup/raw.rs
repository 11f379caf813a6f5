//! Copying the database file as it is on disk, in large chunks, read through the descriptor
//! SQLite holds for the source connection (never one of our own: closing it would drop this
//! process's locks on the database).
//!
//! Bytes read this way are only the database when something makes them so: in WAL mode, a
//! read snapshot held during the copy means that the file changes only by checkpoints writing
//! pages that are in the log, so writing the log's committed pages over the copy afterwards
//! makes it exact ([`wal`](super::wal)); under the write lock nothing changes the file but
//! such checkpoints.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::{BackupProgress, ProgressFn};
use crate::error::BackupError;
use crate::ffi::RawConnection;

/// Bytes read and written at a time.
const CHUNK: usize = 1 << 20;

/// What the destination holds before a raw copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dest {
    /// Nothing worth keeping: every chunk is written.
    Empty,
    /// An earlier copy of the same database: only the chunks that differ are written, so that
    /// a copy brought up to date dirties (and syncs) only what changed.
    Earlier,
}

/// Copies the main database file of `source` into `dest` (which exists), `page_size` bytes a
/// page for progress; the file gets the source's length. Returns how many bytes were written.
pub(crate) fn copy_file(
    source: &RawConnection,
    dest: &Path,
    held: Dest,
    page_size: u32,
    progress: Option<&ProgressFn>,
) -> Result<u64, BackupError> {
    let size = source
        .file_size()
        .map_err(BackupError::sqlite("cannot read the database file's size"))?;
    let mut out = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dest)
        .map_err(BackupError::io("cannot open the copy"))?;
    let (mut chunk, mut old) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    let (mut offset, mut written) = (0u64, 0u64);
    let total_pages = size.div_ceil(u64::from(page_size));
    while offset < size {
        let len = usize::try_from((size - offset).min(CHUNK as u64)).unwrap_or(CHUNK);
        source
            .read_file(offset, &mut chunk[..len])
            .map_err(BackupError::sqlite("cannot read the database file"))?;
        let have_old = held == Dest::Earlier && read_at(&mut out, offset, &mut old[..len]);
        if !have_old || old[..len] != chunk[..len] {
            out.seek(SeekFrom::Start(offset))
                .and_then(|_| out.write_all(&chunk[..len]))
                .map_err(BackupError::io("cannot write the copy"))?;
            written += len as u64;
        }
        offset += len as u64;
        if let Some(report) = progress {
            report(BackupProgress {
                copied_pages: offset.div_ceil(u64::from(page_size)),
                total_pages,
            });
        }
    }
    out.set_len(size)
        .map_err(BackupError::io("cannot size the copy"))?;
    Ok(written)
}

/// Reads `buf.len()` bytes of `file` at `offset`; false when they are not all there.
fn read_at(file: &mut File, offset: u64, buf: &mut [u8]) -> bool {
    file.seek(SeekFrom::Start(offset)).is_ok() && file.read_exact(buf).is_ok()
}
