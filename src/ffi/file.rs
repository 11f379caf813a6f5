//! The main database file, read through the descriptor SQLite itself holds for a connection
//! (`SQLITE_FCNTL_FILE_POINTER`, then the VFS's `xFileSize` and `xRead`), or that descriptor
//! itself, borrowed, for the kernel to copy from ([`RawConnection::descriptor`]).
//!
//! Reading the live file through a descriptor of our own would be wrong: POSIX locks belong to
//! the process and the file, so closing any descriptor of the database drops every lock this
//! process holds on it, SQLite's included (SQLite defers its own closes for that reason). The
//! connection's own descriptor is closed only by SQLite.

use std::ffi::c_int;
#[cfg(unix)]
use std::ffi::{CStr, c_void};
#[cfg(unix)]
use std::os::fd::BorrowedFd;
#[cfg(unix)]
use std::path::Path;
use std::ptr::{self, NonNull};

use libsqlite3_sys as sys;

use super::{RawConnection, SqliteFailure};

impl RawConnection {
    /// The connection's main database file, as its VFS opened it.
    fn main_db_file(&self) -> Result<NonNull<sys::sqlite3_file>, SqliteFailure> {
        let mut file: *mut sys::sqlite3_file = ptr::null_mut();
        // SAFETY: open connection; the file control writes one `sqlite3_file*` to the pointer.
        let rc = unsafe {
            sys::sqlite3_file_control(
                self.db.as_ptr(),
                c"main".as_ptr(),
                sys::SQLITE_FCNTL_FILE_POINTER,
                (&raw mut file).cast(),
            )
        };
        match NonNull::new(file) {
            // SAFETY: a non-null file returned by SQLite points to a valid `sqlite3_file`.
            Some(file) if rc == sys::SQLITE_OK && !unsafe { file.as_ref() }.pMethods.is_null() => {
                Ok(file)
            }
            _ => Err(SqliteFailure::new(
                sys::SQLITE_CANTOPEN,
                "the database file is not open",
            )),
        }
    }

    /// The size in bytes of the main database file.
    pub fn file_size(&self) -> Result<u64, SqliteFailure> {
        let file = self.main_db_file()?;
        let mut size: sys::sqlite3_int64 = 0;
        // SAFETY: `file` is the open main file of this connection, used by this thread only;
        // `pMethods` is non-null (checked) and points to the VFS's method table.
        let rc = unsafe {
            let methods = &*file.as_ref().pMethods;
            match methods.xFileSize {
                Some(file_size) => file_size(file.as_ptr(), &mut size),
                None => sys::SQLITE_MISUSE,
            }
        };
        match rc {
            sys::SQLITE_OK => Ok(u64::try_from(size).unwrap_or(0)),
            rc => Err(SqliteFailure::from_code(rc)),
        }
    }

    /// Reads `buf.len()` bytes of the main database file at `offset`, as it is on disk, with no
    /// lock (the caller knows why the bytes are good enough). Bytes past the end of the file
    /// read as zeros.
    pub fn read_file(&self, offset: u64, buf: &mut [u8]) -> Result<(), SqliteFailure> {
        let file = self.main_db_file()?;
        let amount = c_int::try_from(buf.len())
            .map_err(|_| SqliteFailure::new(sys::SQLITE_MISUSE, "a read too large"))?;
        let offset = sys::sqlite3_int64::try_from(offset)
            .map_err(|_| SqliteFailure::new(sys::SQLITE_MISUSE, "an offset too large"))?;
        // SAFETY: as in `file_size`; `buf` is valid for `amount` bytes of writes.
        let rc = unsafe {
            let methods = &*file.as_ref().pMethods;
            match methods.xRead {
                Some(read) => read(file.as_ptr(), buf.as_mut_ptr().cast(), amount, offset),
                None => sys::SQLITE_MISUSE,
            }
        };
        match rc {
            // A short read fills the rest of the buffer with zeros.
            sys::SQLITE_OK | sys::SQLITE_IOERR_SHORT_READ => Ok(()),
            rc => Err(SqliteFailure::from_code(rc)),
        }
    }

    /// The descriptor SQLite holds for the main database file, borrowed for as long as the
    /// connection is: for the kernel to copy the file from (`FICLONE`, `copy_file_range`)
    /// without a descriptor of our own, whose close would drop this process's locks.
    ///
    /// SQLite has no call that hands it out: it is read from the head of the `unixFile` that
    /// SQLite's `unix` VFSes open (unchanged since SQLite 3.7), and only trusted when the
    /// connection's VFS is one of those, the file names that VFS as its creator, and the
    /// descriptor is the file at `path` (same device and inode). Otherwise `None`: the caller
    /// reads through SQLite ([`read_file`](Self::read_file)).
    #[cfg(unix)]
    pub fn descriptor(&self, path: &Path) -> Option<BorrowedFd<'_>> {
        use std::os::unix::fs::MetadataExt;

        /// The first fields of SQLite's `struct unixFile` (os_unix.c).
        #[repr(C)]
        struct UnixFileHead {
            methods: *const sys::sqlite3_io_methods,
            vfs: *mut sys::sqlite3_vfs,
            inode: *mut c_void,
            h: c_int,
        }

        let mut vfs: *mut sys::sqlite3_vfs = ptr::null_mut();
        // SAFETY: open connection; the file control writes one `sqlite3_vfs*` to the pointer.
        let rc = unsafe {
            sys::sqlite3_file_control(
                self.db.as_ptr(),
                c"main".as_ptr(),
                sys::SQLITE_FCNTL_VFS_POINTER,
                (&raw mut vfs).cast(),
            )
        };
        if rc != sys::SQLITE_OK || vfs.is_null() {
            return None;
        }
        // SAFETY: a registered VFS, whose name is a NUL-terminated string it owns.
        let name = unsafe { (*vfs).zName };
        if name.is_null() {
            return None;
        }
        // SAFETY: as above: not null, NUL-terminated, alive as long as the VFS is registered.
        if !unsafe { CStr::from_ptr(name) }
            .to_bytes()
            .starts_with(b"unix")
        {
            return None;
        }
        let file = self.main_db_file().ok()?;
        // SAFETY: the `unix` VFSes open every file as a `unixFile`, which starts with these
        // fields; the file is open (checked by `main_db_file`) and lives as long as `self`.
        let head = unsafe { &*file.as_ptr().cast::<UnixFileHead>() };
        if head.vfs != vfs || head.h < 0 {
            return None;
        }
        // SAFETY: an open descriptor of SQLite's, closed only when the connection is, which
        // the borrow of `self` outlives.
        let fd = unsafe { BorrowedFd::borrow_raw(head.h) };
        let (held, named) = (rustix::fs::fstat(fd).ok()?, std::fs::metadata(path).ok()?);
        // `st_dev` and `st_ino` are `u64` on Linux, narrower elsewhere.
        #[allow(clippy::useless_conversion)]
        let same = u64::try_from(held.st_dev).ok() == Some(named.dev())
            && u64::try_from(held.st_ino).ok() == Some(named.ino());
        same.then_some(fd)
    }
}
