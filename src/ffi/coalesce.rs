//! A VFS for the files a backup writes: it wraps the default VFS, and gathers the sequential
//! page writes of a copy into writes of [`WRITE`] bytes. SQLite writes a copy one page per
//! system call (262,144 calls for a gigabyte of 4 KiB pages); gathered, 16 times fewer. (The
//! Unix VFS writes at most 128 KiB per call: larger writes are not fewer calls.)
//!
//! Every other operation is the default VFS's. A read, a sync, a truncation, a size query, a
//! file control or a close first writes out what is gathered, so SQLite never sees the file in
//! another state than it wrote it. Files opened through it support no shared memory (WAL) and
//! no memory mapping: backup files are written without a journal.

use std::ffi::{CStr, c_int, c_void};
use std::ptr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicPtr, Ordering};

use libsqlite3_sys as sys;

/// The VFS's name, for `sqlite3_open_v2`.
pub(crate) const NAME: &CStr = c"backstop-coalesce";

/// The bytes handed to the default VFS per write: 64 KiB, the largest page, which the Unix
/// VFS writes in one system call (it cuts larger writes at 128 KiB).
const WRITE: usize = 64 << 10;

/// The most bytes gathered before they are written.
const CHUNK: usize = 1 << 20;

/// The default VFS, which does the work.
static DEFAULT: AtomicPtr<sys::sqlite3_vfs> = AtomicPtr::new(ptr::null_mut());
static REGISTERED: OnceLock<c_int> = OnceLock::new();

/// Registers the VFS (once; not as the default). Returns SQLite's result code.
pub(crate) fn register() -> c_int {
    *REGISTERED.get_or_init(|| {
        // SAFETY: `sqlite3_vfs_find(NULL)` returns the default VFS, which lives as long as the
        // process; the copy keeps its functions and `pAppData`, so they work as for the
        // default; the new VFS is leaked, as SQLite requires it to outlive its registration,
        // and registered once.
        unsafe {
            let default = sys::sqlite3_vfs_find(ptr::null());
            if default.is_null() {
                return sys::SQLITE_ERROR;
            }
            DEFAULT.store(default, Ordering::Release);
            let mut vfs = *default;
            vfs.szOsFile =
                c_int::try_from(size_of::<File>()).unwrap_or(c_int::MAX) + (*default).szOsFile;
            vfs.pNext = ptr::null_mut();
            vfs.zName = NAME.as_ptr();
            vfs.xOpen = Some(open);
            sys::sqlite3_vfs_register(Box::leak(Box::new(vfs)), 0)
        }
    })
}

/// A file opened through the VFS: its own methods, then the default VFS's file (in the same
/// allocation, right after it), and the bytes gathered so far.
#[repr(C)]
struct File {
    base: sys::sqlite3_file,
    inner: *mut sys::sqlite3_file,
    gathered: *mut Gathered,
}

/// Bytes waiting to be written at `offset`.
struct Gathered {
    offset: i64,
    bytes: Vec<u8>,
}

static METHODS: sys::sqlite3_io_methods = sys::sqlite3_io_methods {
    iVersion: 1,
    xClose: Some(close),
    xRead: Some(read),
    xWrite: Some(write),
    xTruncate: Some(truncate),
    xSync: Some(sync),
    xFileSize: Some(file_size),
    xLock: Some(lock),
    xUnlock: Some(unlock),
    xCheckReservedLock: Some(check_reserved_lock),
    xFileControl: Some(file_control),
    xSectorSize: Some(sector_size),
    xDeviceCharacteristics: Some(device_characteristics),
    xShmMap: None,
    xShmLock: None,
    xShmBarrier: None,
    xShmUnmap: None,
    xFetch: None,
    xUnfetch: None,
};

/// The default VFS's methods of the inner file.
///
/// SAFETY (for callers): `file` is a `File` opened by [`open`], whose inner file is open.
unsafe fn inner(
    file: *mut sys::sqlite3_file,
) -> (*mut sys::sqlite3_file, &'static sys::sqlite3_io_methods) {
    // SAFETY: see above; the inner file's methods are the default VFS's static table.
    unsafe {
        let inner = (*file.cast::<File>()).inner;
        (inner, &*(*inner).pMethods)
    }
}

/// Writes out what is gathered.
///
/// SAFETY (for callers): as for [`inner`].
unsafe fn flush(file: *mut sys::sqlite3_file) -> c_int {
    // SAFETY: see above; `gathered` is the box made by `open`, used by this one file only.
    unsafe {
        let gathered = &mut *(*file.cast::<File>()).gathered;
        if gathered.bytes.is_empty() {
            return sys::SQLITE_OK;
        }
        let (inner, methods) = inner(file);
        let Some(write) = methods.xWrite else {
            return sys::SQLITE_IOERR_WRITE;
        };
        let mut offset = gathered.offset;
        let mut rc = sys::SQLITE_OK;
        for piece in gathered.bytes.chunks(WRITE) {
            // At most `WRITE` bytes: the conversions cannot fail.
            let amount = c_int::try_from(piece.len()).unwrap_or(c_int::MAX);
            rc = write(inner, piece.as_ptr().cast(), amount, offset);
            if rc != sys::SQLITE_OK {
                break;
            }
            offset += i64::try_from(piece.len()).unwrap_or(i64::MAX);
        }
        gathered.bytes.clear();
        rc
    }
}

unsafe extern "C" fn open(
    _vfs: *mut sys::sqlite3_vfs,
    name: sys::sqlite3_filename,
    file: *mut sys::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    // SAFETY: SQLite gives `file` as `szOsFile` bytes: our `File`, then room for the default
    // VFS's file; the default VFS was stored by `register` before this VFS existed.
    unsafe {
        let default = DEFAULT.load(Ordering::Acquire);
        let ours = file.cast::<File>();
        let inner = file
            .cast::<u8>()
            .add(size_of::<File>())
            .cast::<sys::sqlite3_file>();
        (*ours).base.pMethods = ptr::null();
        (*inner).pMethods = ptr::null();
        let Some(default_open) = (*default).xOpen else {
            return sys::SQLITE_ERROR;
        };
        let rc = default_open(default, name, inner, flags, out_flags);
        if rc != sys::SQLITE_OK {
            if !(*inner).pMethods.is_null()
                && let Some(close) = (*(*inner).pMethods).xClose
            {
                close(inner);
            }
            return rc;
        }
        (*ours).inner = inner;
        (*ours).gathered = Box::into_raw(Box::new(Gathered {
            offset: 0,
            bytes: Vec::new(),
        }));
        (*ours).base.pMethods = &METHODS;
        sys::SQLITE_OK
    }
}

unsafe extern "C" fn close(file: *mut sys::sqlite3_file) -> c_int {
    // SAFETY: called once by SQLite on a file `open` opened; the box is freed once, here.
    unsafe {
        let written = flush(file);
        let (inner, methods) = inner(file);
        let closed = methods.xClose.map_or(sys::SQLITE_OK, |c| c(inner));
        drop(Box::from_raw((*file.cast::<File>()).gathered));
        (*file).pMethods = ptr::null();
        if written != sys::SQLITE_OK {
            written
        } else {
            closed
        }
    }
}

unsafe extern "C" fn write(
    file: *mut sys::sqlite3_file,
    data: *const c_void,
    amount: c_int,
    offset: i64,
) -> c_int {
    // SAFETY: SQLite passes `amount` readable bytes at `data`, for a file `open` opened.
    unsafe {
        let gathered = &mut *(*file.cast::<File>()).gathered;
        let follows = gathered.offset + gathered.bytes.len() as i64 == offset;
        if !gathered.bytes.is_empty() && !follows {
            let rc = flush(file);
            if rc != sys::SQLITE_OK {
                return rc;
            }
        }
        let gathered = &mut *(*file.cast::<File>()).gathered;
        if gathered.bytes.is_empty() {
            gathered.offset = offset;
            gathered.bytes.reserve(CHUNK);
        }
        let Ok(amount) = usize::try_from(amount) else {
            return sys::SQLITE_IOERR_WRITE;
        };
        gathered
            .bytes
            .extend_from_slice(std::slice::from_raw_parts(data.cast::<u8>(), amount));
        if gathered.bytes.len() >= CHUNK {
            return flush(file);
        }
        sys::SQLITE_OK
    }
}

/// Writes out what is gathered, then hands the call to the default VFS's file.
macro_rules! after_flush {
    ($file:ident, $method:ident $(, $arg:expr)*) => {{
        // SAFETY: a file `open` opened; the default VFS's method gets its own file.
        unsafe {
            let rc = flush($file);
            if rc != sys::SQLITE_OK {
                return rc;
            }
            let (inner, methods) = inner($file);
            methods.$method.map_or(sys::SQLITE_OK, |m| m(inner $(, $arg)*))
        }
    }};
}

/// Hands the call to the default VFS's file.
macro_rules! delegate {
    ($file:ident, $method:ident, $default:expr $(, $arg:expr)*) => {{
        // SAFETY: a file `open` opened; the default VFS's method gets its own file.
        unsafe {
            let (inner, methods) = inner($file);
            methods.$method.map_or($default, |m| m(inner $(, $arg)*))
        }
    }};
}

unsafe extern "C" fn read(
    file: *mut sys::sqlite3_file,
    data: *mut c_void,
    amount: c_int,
    offset: i64,
) -> c_int {
    after_flush!(file, xRead, data, amount, offset)
}

unsafe extern "C" fn truncate(file: *mut sys::sqlite3_file, size: i64) -> c_int {
    after_flush!(file, xTruncate, size)
}

unsafe extern "C" fn sync(file: *mut sys::sqlite3_file, flags: c_int) -> c_int {
    after_flush!(file, xSync, flags)
}

unsafe extern "C" fn file_size(file: *mut sys::sqlite3_file, size: *mut i64) -> c_int {
    after_flush!(file, xFileSize, size)
}

unsafe extern "C" fn file_control(
    file: *mut sys::sqlite3_file,
    op: c_int,
    arg: *mut c_void,
) -> c_int {
    after_flush!(file, xFileControl, op, arg)
}

unsafe extern "C" fn lock(file: *mut sys::sqlite3_file, level: c_int) -> c_int {
    delegate!(file, xLock, sys::SQLITE_OK, level)
}

unsafe extern "C" fn unlock(file: *mut sys::sqlite3_file, level: c_int) -> c_int {
    delegate!(file, xUnlock, sys::SQLITE_OK, level)
}

unsafe extern "C" fn check_reserved_lock(file: *mut sys::sqlite3_file, out: *mut c_int) -> c_int {
    delegate!(file, xCheckReservedLock, sys::SQLITE_OK, out)
}

unsafe extern "C" fn sector_size(file: *mut sys::sqlite3_file) -> c_int {
    delegate!(file, xSectorSize, 4096)
}

unsafe extern "C" fn device_characteristics(file: *mut sys::sqlite3_file) -> c_int {
    delegate!(file, xDeviceCharacteristics, 0)
}
