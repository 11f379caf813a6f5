//! Copying the database file as it is on disk, the fastest way the system allows: a clone of
//! the file (`FICLONE`: XFS with reflink, btrfs) or a copy inside the kernel
//! (`copy_file_range`), both from the descriptor SQLite holds for the source connection; else
//! read through SQLite's file handle and written from here. Never through a descriptor of our
//! own: closing it would drop this process's locks on the database.
//!
//! Bytes copied this way are only the database when something makes them so: in WAL mode, a
//! read snapshot held during the copy means that the file changes only by checkpoints writing
//! pages that are in the log, so writing the log's committed pages over the copy afterwards
//! makes it exact ([`wal`](super::wal)), whichever way the bytes were copied, a page torn by a
//! checkpoint included; under the write lock nothing changes the file but such checkpoints.
//!
//! The copy's new pages go to disk as it is written ([`writeback`]), so that the final flush
//! never holds hundreds of MB that other writers' `fsync` would wait behind.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::{BackupProgress, ProgressFn};
use crate::error::BackupError;
use crate::ffi::{RawConnection, writeback};

/// Bytes copied at a time (and between two progress reports).
const CHUNK: usize = 1 << 20;
/// Bytes written before they are sent to disk; at most twice this is waiting to be.
const WRITEBACK: u64 = 8 << 20;

/// How a backup of a database in WAL mode copies its file, before the pages committed since
/// are written over the copy from the log (which makes it the database exactly, whichever way
/// it was copied: see the README). A database with a rollback journal is always copied with
/// SQLite's backup API, and on other systems than Linux every file is read and written. Set
/// with [`Migrator::backup_copy`](crate::Migrator::backup_copy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[non_exhaustive]
pub enum BackupCopy {
    /// The fastest the system offers: a clone of the file (`FICLONE`, on XFS with reflink or
    /// btrfs, when the backup directory is on the database's file system), which shares its
    /// blocks with the database until either changes; else as [`KernelCopy`](Self::KernelCopy).
    #[default]
    Fastest,
    /// A copy inside the kernel (`copy_file_range`), else as [`ReadWrite`](Self::ReadWrite).
    /// Never a clone asked for, but file systems that clone (XFS, btrfs) make this one by
    /// sharing blocks too.
    KernelCopy,
    /// Read through SQLite and written by this process, a MiB at a time: a copy whose blocks
    /// are its own on every file system, and for one whose copies inside the kernel are not
    /// trusted.
    ReadWrite,
}

/// What the destination holds before a raw copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dest {
    /// Nothing worth keeping: every chunk is written.
    Empty,
    /// An earlier copy of the same database: only the chunks that differ are written, so that
    /// a copy brought up to date dirties (and syncs) only what changed.
    Earlier,
}

/// How a raw copy is made: what the destination holds, the fastest way allowed, and who hears
/// of its progress.
#[derive(Clone, Copy)]
pub(crate) struct Plan<'a> {
    pub held: Dest,
    pub allowed: BackupCopy,
    pub progress: Option<&'a ProgressFn>,
}

/// How a copy was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Made {
    /// The file cloned: its blocks shared with the database until either changes.
    Clone,
    /// Copied inside the kernel.
    KernelCopy,
    /// Read through SQLite and written from this process.
    ReadWrite,
}

/// Copies the main database file of `source` (the file at `file`) into `dest` (which exists)
/// as `plan` says; the copy gets the source's length as it was when the copy began (bytes
/// past the end of a file that shrank meanwhile are zeros).
pub(crate) fn copy_file(
    source: &RawConnection,
    file: &Path,
    dest: &Path,
    plan: Plan<'_>,
) -> Result<Made, BackupError> {
    let size = source
        .file_size()
        .map_err(BackupError::sqlite("cannot read the database file's size"))?;
    let page_size = source
        .query_int("PRAGMA page_size")
        .map(|size| u64::try_from(size).unwrap_or(4096))
        .map_err(BackupError::sqlite("cannot read the page size"))?;
    let out = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dest)
        .map_err(BackupError::io("cannot open the copy"))?;
    let report = Progress {
        to: plan.progress,
        page_size,
        size,
    };
    let made = in_kernel(source, file, &out, size, plan, &report)?;
    let made = match made {
        Some(made) => made,
        None => {
            read_write(source, &out, size, plan.held, &report)?;
            Made::ReadWrite
        }
    };
    out.set_len(size)
        .map_err(BackupError::io("cannot size the copy"))?;
    tracing::debug!(bytes = size, how = ?made, "database file copied");
    Ok(made)
}

/// A clone or a copy inside the kernel, when allowed and the system can: `None` when neither
/// was made (nothing of the destination is then trusted: it is written again in full).
#[cfg(target_os = "linux")]
fn in_kernel(
    source: &RawConnection,
    file: &Path,
    out: &File,
    size: u64,
    plan: Plan<'_>,
    report: &Progress<'_>,
) -> Result<Option<Made>, BackupError> {
    if plan.allowed == BackupCopy::ReadWrite {
        return Ok(None);
    }
    let Some(fd) = source.descriptor(file) else {
        tracing::debug!("SQLite's descriptor of the database is not known: read and written");
        return Ok(None);
    };
    if plan.allowed == BackupCopy::Fastest {
        match rustix::fs::ioctl_ficlone(out, fd) {
            Ok(()) => {
                report.at(size);
                return Ok(Some(Made::Clone));
            }
            Err(e) => tracing::debug!(err = %e, "the file system cannot clone the database here"),
        }
    }
    // An earlier copy is brought up to date by writing only what differs (read here).
    if plan.held == Dest::Earlier {
        return Ok(None);
    }
    let mut flush = Writeback::new(out);
    let (mut from, mut to) = (0u64, 0u64);
    while from < size {
        let len = chunk_at(from, size);
        match rustix::fs::copy_file_range(fd, Some(&mut from), out, Some(&mut to), len) {
            // The file ended early (a checkpoint shortened it): the rest is zeros.
            Ok(0) => break,
            Ok(_) => {
                flush.wrote(to)?;
                report.at(from);
            }
            Err(e) => {
                tracing::debug!(err = %e, "the kernel cannot copy the database here");
                return Ok(None);
            }
        }
    }
    Ok(Some(Made::KernelCopy))
}

#[cfg(not(target_os = "linux"))]
fn in_kernel(
    _source: &RawConnection,
    _file: &Path,
    _out: &File,
    _size: u64,
    _plan: Plan<'_>,
    _report: &Progress<'_>,
) -> Result<Option<Made>, BackupError> {
    Ok(None)
}

/// Reads the file through SQLite, a chunk at a time, and writes each chunk (when the
/// destination holds an earlier copy, only those that differ).
fn read_write(
    source: &RawConnection,
    mut out: &File,
    size: u64,
    held: Dest,
    report: &Progress<'_>,
) -> Result<(), BackupError> {
    let (mut chunk, mut old) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    let mut flush = Writeback::new(out);
    let mut offset = 0u64;
    while offset < size {
        let len = chunk_at(offset, size);
        source
            .read_file(offset, &mut chunk[..len])
            .map_err(BackupError::sqlite("cannot read the database file"))?;
        let have_old = held == Dest::Earlier && read_at(out, offset, &mut old[..len]);
        if !have_old || old[..len] != chunk[..len] {
            out.seek(SeekFrom::Start(offset))
                .and_then(|_| out.write_all(&chunk[..len]))
                .map_err(BackupError::io("cannot write the copy"))?;
        }
        offset += len as u64;
        flush.wrote(offset)?;
        report.at(offset);
    }
    Ok(())
}

/// The length of the chunk copied at `offset` of a file of `size` bytes.
fn chunk_at(offset: u64, size: u64) -> usize {
    usize::try_from(size.saturating_sub(offset).min(CHUNK as u64)).unwrap_or(CHUNK)
}

/// Reads `buf.len()` bytes of `file` at `offset`; false when they are not all there.
fn read_at(mut file: &File, offset: u64, buf: &mut [u8]) -> bool {
    file.seek(SeekFrom::Start(offset)).is_ok() && file.read_exact(buf).is_ok()
}

/// Sends a copy's pages to disk as it is written: every [`WRITEBACK`] bytes, starts writing
/// them and waits for the ones started before, so that at most two windows are waiting.
struct Writeback<'f> {
    file: &'f File,
    /// Where the pages not yet sent to disk begin.
    started: u64,
    /// Where the pages being written begin (they end at `started`).
    waiting: u64,
}

impl<'f> Writeback<'f> {
    fn new(file: &'f File) -> Self {
        Writeback {
            file,
            started: 0,
            waiting: 0,
        }
    }

    /// The copy is written up to `end`.
    fn wrote(&mut self, end: u64) -> Result<(), BackupError> {
        if end < self.started + WRITEBACK {
            return Ok(());
        }
        writeback::wait(self.file, self.waiting, self.started - self.waiting)
            .and_then(|()| writeback::start(self.file, self.started, end - self.started))
            .map_err(BackupError::io("cannot write the copy"))?;
        (self.waiting, self.started) = (self.started, end);
        Ok(())
    }
}

/// Progress reports of a copy, in pages.
struct Progress<'a> {
    to: Option<&'a ProgressFn>,
    page_size: u64,
    size: u64,
}

impl Progress<'_> {
    /// The copy has reached `offset`.
    fn at(&self, offset: u64) {
        if let Some(report) = self.to {
            report(BackupProgress {
                copied_pages: offset.min(self.size).div_ceil(self.page_size),
                total_pages: self.size.div_ceil(self.page_size),
            });
        }
    }
}
