//! Bringing a copy up to date from the write-ahead log. A copy taken from a read snapshot misses
//! what other connections committed after the snapshot; in WAL mode every such commit is a set
//! of frames in the `-wal` file (the snapshot kept them from being checkpointed or overwritten).
//! Under the write lock, the newest committed image of each page in the log is the database as
//! it is now: writing those pages into the copy makes it exact.
//!
//! The log's format is SQLite's (<https://www.sqlite.org/fileformat.html#the_write_ahead_log>):
//! a 32-byte header, then frames of a 24-byte header and a page. A frame is valid when its salts
//! match the header's and the running checksum matches; the log ends at the last valid commit
//! frame (one with the database's size in pages).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

const HEADER: usize = 32;
const FRAME_HEADER: usize = 24;
const MAGIC_LITTLE: u32 = 0x377f_0682;
const MAGIC_BIG: u32 = 0x377f_0683;

/// What identifies one generation of a log: its salts, which SQLite changes whenever it
/// restarts the log (the first salt goes up by one, the second is new), and the checkpoint
/// sequence number. Two equal headers read at two moments mean that every frame written in
/// between was appended to the log, none overwritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LogHeader {
    sequence: u32,
    salts: (u32, u32),
}

/// The header of the log at `wal`: `None` when there is no log, it is empty (just truncated),
/// or its header is not valid (being written).
pub(crate) fn header(wal: &Path) -> std::io::Result<Option<LogHeader>> {
    Ok(open(wal)?.and_then(|(_, bytes)| parse_header(&bytes).map(|(header, _, _)| header)))
}

/// The log at `wal`, positioned after its header, and the header's bytes; `None` when there is
/// no log or it is shorter than a header.
fn open(wal: &Path) -> std::io::Result<Option<(File, [u8; HEADER])>> {
    let mut file = match File::open(wal) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut bytes = [0u8; HEADER];
    Ok(file.read_exact(&mut bytes).is_ok().then_some((file, bytes)))
}

/// A valid header: its identity and the log's byte order and page size.
fn parse_header(bytes: &[u8; HEADER]) -> Option<(LogHeader, bool, u32)> {
    let big_endian = match be32(bytes, 0) {
        MAGIC_LITTLE => false,
        MAGIC_BIG => true,
        _ => return None,
    };
    if checksum(big_endian, &bytes[..24], (0, 0)) != (be32(bytes, 24), be32(bytes, 28)) {
        return None;
    }
    let page_size = match be32(bytes, 8) {
        1 => 65536,
        n => n,
    };
    let header = LogHeader {
        sequence: be32(bytes, 12),
        salts: (be32(bytes, 16), be32(bytes, 20)),
    };
    Some((header, big_endian, page_size))
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The committed content of a log: the newest image of each page, and the database's size.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Committed {
    /// Page number → offset of its newest committed image in the log.
    pages: BTreeMap<u32, u64>,
    /// The database's size in pages after the last commit (0: no commit in the log).
    db_pages: u32,
    page_size: u32,
}

impl Committed {
    /// How many pages the log changes.
    pub fn len(&self) -> usize {
        self.pages.len()
    }

    /// Reads the log at `wal` (`None` when there is no log, or it has no valid frame).
    pub fn read(wal: &Path) -> std::io::Result<Option<Self>> {
        let Some((mut file, header)) = open(wal)? else {
            return Ok(None);
        };
        let Some((parsed, big_endian, page_size)) = parse_header(&header) else {
            return Ok(None);
        };
        let (salt1, salt2) = parsed.salts;
        let mut sum = (be32(&header, 24), be32(&header, 28));
        let mut committed = Committed {
            page_size,
            ..Committed::default()
        };
        let mut pending: BTreeMap<u32, u64> = BTreeMap::new();
        let mut frame = vec![0u8; FRAME_HEADER + page_size as usize];
        let mut offset = HEADER as u64;
        while file.read_exact(&mut frame).is_ok() {
            let (page, db_pages) = (be32(&frame, 0), be32(&frame, 4));
            if be32(&frame, 8) != salt1 || be32(&frame, 12) != salt2 {
                break;
            }
            sum = checksum(big_endian, &frame[..8], sum);
            sum = checksum(big_endian, &frame[FRAME_HEADER..], sum);
            if sum != (be32(&frame, 16), be32(&frame, 20)) {
                break;
            }
            pending.insert(page, offset + FRAME_HEADER as u64);
            if db_pages != 0 {
                committed.pages.append(&mut pending);
                committed.db_pages = db_pages;
            }
            offset += frame.len() as u64;
        }
        Ok((committed.db_pages != 0).then_some(committed))
    }

    /// Writes the newest committed image of every page in the log into `copy` (a database file
    /// of the same page size) and sets its size to the database's.
    pub fn apply(&self, wal: &Path, copy: &Path) -> std::io::Result<()> {
        let mut log = File::open(wal)?;
        let mut out = std::fs::OpenOptions::new().write(true).open(copy)?;
        let mut page = vec![0u8; self.page_size as usize];
        for (number, at) in &self.pages {
            if *number > self.db_pages {
                continue; // beyond the end after a shrink: cut off below
            }
            log.seek(SeekFrom::Start(*at))?;
            log.read_exact(&mut page)?;
            out.seek(SeekFrom::Start(
                u64::from(number - 1) * u64::from(self.page_size),
            ))?;
            out.write_all(&page)?;
        }
        out.set_len(u64::from(self.db_pages) * u64::from(self.page_size))
    }
}

/// SQLite's WAL checksum: two 32-bit sums over 8-byte steps, words read in the log's byte order.
fn checksum(big_endian: bool, data: &[u8], (mut s0, mut s1): (u32, u32)) -> (u32, u32) {
    for chunk in data.chunks_exact(8) {
        let word = |b: &[u8]| {
            let bytes = [b[0], b[1], b[2], b[3]];
            if big_endian {
                u32::from_be_bytes(bytes)
            } else {
                u32::from_le_bytes(bytes)
            }
        };
        s0 = s0.wrapping_add(word(&chunk[..4])).wrapping_add(s1);
        s1 = s1.wrapping_add(word(&chunk[4..])).wrapping_add(s0);
    }
    (s0, s1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::{OpenMode, RawConnection};

    fn bytes(path: &Path) -> Vec<u8> {
        std::fs::read(path).unwrap()
    }

    /// A copy of a snapshot, brought up to date from the log, equals a copy taken now.
    #[test]
    fn a_snapshot_copy_plus_the_log_is_the_database_now() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("live.db");
        let writer = RawConnection::open(&db, OpenMode::Create).unwrap();
        writer
            .exec(
                "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
                 CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT);
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
                 INSERT INTO t SELECT i, hex(randomblob(300)) FROM n;
                 PRAGMA wal_checkpoint(TRUNCATE);",
            )
            .unwrap();
        // The snapshot and its copy.
        let reader = RawConnection::open(&db, OpenMode::Existing).unwrap();
        reader.exec("BEGIN; SELECT count(*) FROM t;").unwrap();
        let copy = dir.path().join("copy.db");
        crate::backup::copy::copy_pages(&reader, &copy, None).unwrap();
        // Commits after the snapshot: updates, inserts, deletes.
        writer
            .exec(
                "UPDATE t SET body = 'changed' WHERE id % 7 = 0;
                 INSERT INTO t SELECT id + 1000, body FROM t WHERE id < 50;
                 DELETE FROM t WHERE id > 400 AND id < 1000;",
            )
            .unwrap();
        reader.exec("COMMIT").unwrap();
        let log = Committed::read(&dir.path().join("live.db-wal"))
            .unwrap()
            .expect("a log with commits");
        assert!(log.len() > 0);
        log.apply(&dir.path().join("live.db-wal"), &copy).unwrap();
        let fresh = dir.path().join("fresh.db");
        crate::backup::copy::copy_pages(&reader, &fresh, None).unwrap();
        drop(reader);
        // Page for page equal, but the header's change counters, which the backup API sets.
        let (a, b) = (bytes(&copy), bytes(&fresh));
        assert_eq!(a.len(), b.len());
        assert_eq!(a[100..], b[100..]);
    }

    #[test]
    fn no_log_or_a_foreign_file_is_no_log() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Committed::read(&dir.path().join("none-wal")).unwrap(), None);
        let junk = dir.path().join("junk-wal");
        std::fs::write(&junk, [7u8; 200]).unwrap();
        assert_eq!(Committed::read(&junk).unwrap(), None);
    }
}
