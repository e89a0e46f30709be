//! One partition of the embedded bus: an append-only file of checksummed records.
//!
//! Each record is `[len: u32][crc32: u32][body]` with body
//! `[offset: i64][timestamp: i64][key_len: i32][key][value_len: i32][value]` (big-endian,
//! length -1 for an absent key or a tombstone). On open the file is scanned; a torn or
//! corrupt tail (a crash in the middle of a write) is cut off and reported.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use healthstream_contracts::Topic;

use crate::{BusError, Message};

const HEADER: usize = 8;
const MAX_RECORD: u32 = 64 * 1024 * 1024;

#[derive(Clone, Copy)]
struct Entry {
    offset: i64,
    pos: u64,
    len: u32,
}

struct State {
    append: File,
    index: Vec<Entry>,
    end_pos: u64,
    next_offset: i64,
}

/// An open partition log.
pub(crate) struct PartitionLog {
    topic: Topic,
    partition: i32,
    path: PathBuf,
    read: File,
    state: Mutex<State>,
    sync_writes: bool,
}

fn log_err(path: &Path, message: impl std::fmt::Display) -> BusError {
    BusError::Log {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

impl PartitionLog {
    /// Opens or creates the log at `path`, recovering from a torn tail.
    pub(crate) fn open(
        path: &Path,
        topic: Topic,
        partition: i32,
        sync_writes: bool,
    ) -> Result<(PartitionLog, Option<String>), BusError> {
        let mut append = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .map_err(|e| log_err(path, e))?;
        let mut bytes = Vec::new();
        append
            .seek(SeekFrom::Start(0))
            .and_then(|_| append.read_to_end(&mut bytes))
            .map_err(|e| log_err(path, e))?;
        let mut index = Vec::new();
        let mut pos = 0usize;
        let mut next_offset = 0i64;
        let mut warning = None;
        while pos < bytes.len() {
            match parse_at(&bytes, pos) {
                Ok((offset, len)) => {
                    if offset < next_offset {
                        warning = Some(format!(
                            "record at byte {pos} has offset {offset}, behind {next_offset}; log cut there"
                        ));
                        break;
                    }
                    index.push(Entry {
                        offset,
                        pos: pos as u64,
                        len,
                    });
                    next_offset = offset + 1;
                    pos += HEADER + len as usize;
                }
                Err(why) => {
                    warning = Some(format!(
                        "{why} at byte {pos} of {}; the {} bytes from there were cut off",
                        bytes.len(),
                        bytes.len() - pos
                    ));
                    break;
                }
            }
        }
        if pos < bytes.len() {
            append.set_len(pos as u64).map_err(|e| log_err(path, e))?;
        }
        let read = File::open(path).map_err(|e| log_err(path, e))?;
        Ok((
            PartitionLog {
                topic,
                partition,
                path: path.to_path_buf(),
                read,
                state: Mutex::new(State {
                    append,
                    index,
                    end_pos: pos as u64,
                    next_offset,
                }),
                sync_writes,
            },
            warning,
        ))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-updated: the index is
        // pushed only after the write succeeded.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends a record, returning its offset. The bytes are in the file (and so survive a
    /// process crash) when this returns; with `sync_writes` they are also on disk.
    pub(crate) fn append(
        &self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp_ms: i64,
    ) -> Result<i64, BusError> {
        let mut st = self.lock();
        let offset = st.next_offset;
        let mut body =
            Vec::with_capacity(28 + key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len));
        body.extend_from_slice(&offset.to_be_bytes());
        body.extend_from_slice(&timestamp_ms.to_be_bytes());
        for part in [key, value] {
            match part {
                None => body.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(b) => {
                    body.extend_from_slice(&(b.len() as i32).to_be_bytes());
                    body.extend_from_slice(b);
                }
            }
        }
        if body.len() as u64 > u64::from(MAX_RECORD) {
            return Err(log_err(
                &self.path,
                format!(
                    "record of {} bytes exceeds the {MAX_RECORD}-byte limit",
                    body.len()
                ),
            ));
        }
        let mut frame = Vec::with_capacity(HEADER + body.len());
        frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
        frame.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
        frame.extend_from_slice(&body);
        if let Err(e) = st.append.write_all(&frame) {
            // Cut a partial write so the file stays a sequence of whole records.
            let end = st.end_pos;
            let _ = st.append.set_len(end);
            return Err(log_err(&self.path, e));
        }
        if self.sync_writes {
            st.append.sync_data().map_err(|e| log_err(&self.path, e))?;
        }
        let pos = st.end_pos;
        st.index.push(Entry {
            offset,
            pos,
            len: body.len() as u32,
        });
        st.end_pos += frame.len() as u64;
        st.next_offset = offset + 1;
        Ok(offset)
    }

    /// The offset the next record will get.
    pub(crate) fn end_offset(&self) -> i64 {
        self.lock().next_offset
    }

    /// Flushes the file to disk.
    pub(crate) fn sync(&self) -> Result<(), BusError> {
        let st = self.lock();
        st.append.sync_data().map_err(|e| log_err(&self.path, e))
    }

    /// Up to `max` records from `from` on.
    pub(crate) fn read(&self, from: i64, max: usize) -> Result<Vec<Message>, BusError> {
        let entries: Vec<Entry> = {
            let st = self.lock();
            let start = st.index.partition_point(|e| e.offset < from);
            st.index[start..(start + max).min(st.index.len())].to_vec()
        };
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let mut buf = vec![0u8; HEADER + e.len as usize];
            self.read
                .read_exact_at(&mut buf, e.pos)
                .map_err(|err| log_err(&self.path, err))?;
            let (key, value, timestamp_ms) = parse_body(&buf[HEADER..])
                .map_err(|why| log_err(&self.path, format!("offset {}: {why}", e.offset)))?;
            out.push(Message {
                topic: self.topic,
                partition: self.partition,
                offset: e.offset,
                key,
                value,
                timestamp_ms,
            });
        }
        Ok(out)
    }
}

/// Checks the record at `pos`; returns its offset and body length.
fn parse_at(bytes: &[u8], pos: usize) -> Result<(i64, u32), String> {
    let header = bytes
        .get(pos..pos + HEADER)
        .ok_or_else(|| "torn record header".to_string())?;
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    if !(24..=MAX_RECORD).contains(&len) {
        return Err(format!("record length {len} is impossible"));
    }
    let body = bytes
        .get(pos + HEADER..pos + HEADER + len as usize)
        .ok_or_else(|| "torn record body".to_string())?;
    if crc32fast::hash(body) != crc {
        return Err("record checksum mismatch".to_string());
    }
    parse_body(body)?;
    let offset = i64::from_be_bytes(body[0..8].try_into().map_err(|_| "short body")?);
    Ok((offset, len))
}

type Body = (Option<Vec<u8>>, Option<Vec<u8>>, i64);

fn parse_body(body: &[u8]) -> Result<Body, String> {
    let take = |at: usize, n: usize| -> Result<&[u8], String> {
        body.get(at..at + n).ok_or_else(|| {
            format!(
                "record body ends at byte {} before byte {}",
                body.len(),
                at + n
            )
        })
    };
    let ts = i64::from_be_bytes(take(8, 8)?.try_into().map_err(|_| "timestamp")?);
    let mut at = 16;
    let mut parts = [None, None];
    for part in &mut parts {
        let len = i32::from_be_bytes(take(at, 4)?.try_into().map_err(|_| "length")?);
        at += 4;
        if len >= 0 {
            *part = Some(take(at, len as usize)?.to_vec());
            at += len as usize;
        } else if len != -1 {
            return Err(format!("negative length {len}"));
        }
    }
    if at != body.len() {
        return Err(format!("{} stray bytes after the value", body.len() - at));
    }
    let [key, value] = parts;
    Ok((key, value, ts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_survive_reopen_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p0.log");
        {
            let (log, warn) = PartitionLog::open(&path, Topic::Perf, 0, false).expect("open");
            assert!(warn.is_none());
            assert_eq!(log.append(Some(b"k"), Some(b"v1"), 1).expect("append"), 0);
            assert_eq!(log.append(None, None, 2).expect("append"), 1);
            assert_eq!(log.append(Some(b"k"), Some(b"v3"), 3).expect("append"), 2);
        }
        // A crash in the middle of a write leaves half a record.
        let mut f = OpenOptions::new().append(true).open(&path).expect("open");
        f.write_all(&[0, 0, 0, 40, 1, 2]).expect("write");
        drop(f);
        let (log, warn) = PartitionLog::open(&path, Topic::Perf, 0, false).expect("reopen");
        assert!(
            warn.expect("warning").contains("torn record"),
            "cut reported"
        );
        let all = log.read(0, 10).expect("read");
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].value.as_deref(), Some(&b"v1"[..]));
        assert_eq!(all[1].key, None);
        assert_eq!(all[1].value, None);
        assert_eq!(all[2].timestamp_ms, 3);
        assert_eq!(log.append(None, Some(b"v4"), 4).expect("append"), 3);
        assert_eq!(log.read(2, 10).expect("read").len(), 2);
        assert_eq!(log.end_offset(), 4);
    }

    #[test]
    fn a_corrupt_record_is_detected_by_its_checksum() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p0.log");
        {
            let (log, _) = PartitionLog::open(&path, Topic::Perf, 0, true).expect("open");
            log.append(None, Some(b"aaaa"), 1).expect("append");
            log.append(None, Some(b"bbbb"), 2).expect("append");
        }
        let mut bytes = std::fs::read(&path).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).expect("write");
        let (log, warn) = PartitionLog::open(&path, Topic::Perf, 0, false).expect("reopen");
        assert!(warn.expect("warning").contains("checksum"));
        assert_eq!(log.read(0, 10).expect("read").len(), 1);
    }
}
