//! One partition of the embedded bus: an append-only file of checksummed records.
//!
//! Each record is `[len: u32][crc32: u32][body]` with body
//! `[offset: i64][timestamp: i64][key_len: i32][key][value_len: i32][value]` (big-endian,
//! length -1 for an absent key or a tombstone). On open the file is scanned; a torn or
//! corrupt tail (a crash in the middle of a write) is cut off and reported.
//!
//! Appends gather in a buffer that goes to the file in one write when a delivery is awaited
//! ([`PartitionLog::flush`]), when a reader asks for a record still in it, when it holds
//! [`FLUSH_AT`] bytes, or on sync: one system call per group of records instead of one per
//! record. With `sync_writes`, every append is written and synced at once.
//!
//! The last bytes written stay in memory as well (the tail, in two chunks of about
//! [`TAIL_CHUNK`] bytes): a reader close behind the writer, the usual case, has its records
//! parsed from there, without a read from the file into a zeroed buffer. A reader further
//! behind reads the file. Either way it reads only records that are in the file.
//!
//! Waiting readers are told of new records when they are written out by an append or a
//! flush (once for all the records since they were last told), not at each append: a
//! producer awaiting the delivery of a batch wakes each reader once, as a Kafka broker
//! answers a fetch with the batch a producer sent.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

use healthstream_contracts::Topic;

use crate::{BusError, Message};

const HEADER: usize = 8;
const MAX_RECORD: u32 = 64 * 1024 * 1024;

/// Appended bytes held before they are written without being asked for.
const FLUSH_AT: usize = 256 * 1024;

/// Most bytes read from the file at once (a reader's records, in one read).
const READ_AT_MOST: u64 = 4 * 1024 * 1024;

/// Bytes of the log kept in memory, in each of the tail's two chunks: once the newer chunk
/// holds this many written bytes it becomes the older one, whose bytes are let go.
const TAIL_CHUNK: usize = 512 * 1024;

/// The largest read a thread keeps its buffer for (a read is at most [`READ_AT_MOST`]
/// unless one record is larger).
const SCRATCH_AT_MOST: usize = READ_AT_MOST as usize;

thread_local! {
    /// The buffer of this thread's reads from the files of the logs.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[derive(Clone, Copy)]
struct Entry {
    offset: i64,
    pos: u64,
    len: u32,
}

struct State {
    append: File,
    index: Vec<Entry>,
    /// The end of the log, the buffer's records included.
    end_pos: u64,
    /// The end of what is in the file.
    written_pos: u64,
    /// The log's last bytes, from `tail_start` to `end_pos`: those from `written_pos` on
    /// are appended records not yet in the file.
    tail: Vec<u8>,
    tail_start: u64,
    /// The bytes just before the tail (from `older_start`), all in the file.
    older: Vec<u8>,
    older_start: u64,
    /// A write failed: the records from `written_pos` on were lost, and so is the log.
    broken: Option<String>,
    next_offset: i64,
    /// The end of the log when its readers were last told of new records.
    announced: i64,
}

/// The place in `index` of the first record at or after `offset`. Offsets are consecutive
/// but where a recovered file skipped some: the place is found by subtraction, and by
/// search only when that misses.
fn find(index: &[Entry], offset: i64) -> usize {
    let Some(first) = index.first() else {
        return 0;
    };
    let guess = (offset - first.offset).clamp(0, index.len() as i64) as usize;
    match index.get(guess) {
        Some(e) if e.offset == offset => guess,
        None if index.last().is_some_and(|l| l.offset < offset) => index.len(),
        _ => index.partition_point(|e| e.offset < offset),
    }
}

impl State {
    /// Whether records were appended since the last call.
    fn announce(&mut self) -> bool {
        let new = self.next_offset > self.announced;
        self.announced = self.next_offset;
        new
    }

    /// Bytes appended and not yet in the file.
    fn unwritten(&self) -> usize {
        (self.end_pos - self.written_pos) as usize
    }

    /// Writes the appended records to the file.
    fn write_out(&mut self, path: &Path) -> Result<(), BusError> {
        if let Some(why) = &self.broken {
            return Err(log_err(path, why));
        }
        if self.unwritten() == 0 {
            return Ok(());
        }
        let from = (self.written_pos - self.tail_start) as usize;
        if let Err(e) = self.append.write_all(&self.tail[from..]) {
            // Cut a partial write so the file stays a sequence of whole records; the
            // buffered records were given offsets, so the log cannot go on without them.
            let _ = self.append.set_len(self.written_pos);
            let why = format!("writing records at byte {} failed: {e}", self.written_pos);
            self.broken = Some(why.clone());
            return Err(log_err(path, why));
        }
        self.written_pos = self.end_pos;
        if self.tail.len() >= TAIL_CHUNK {
            // The full chunk becomes the older one; the older one's room, the new tail.
            std::mem::swap(&mut self.tail, &mut self.older);
            self.older_start = self.tail_start;
            self.tail.clear();
            self.tail_start = self.end_pos;
            // A very large record is not kept in memory, nor is its room.
            if self.older.len() > 4 * TAIL_CHUNK {
                self.older = Vec::new();
                self.older_start = self.end_pos;
            }
            if self.tail.capacity() > 4 * TAIL_CHUNK {
                self.tail = Vec::new();
            }
        }
        Ok(())
    }

    /// The bytes of the log from `from` to `to`, when they are all in one of the tail's
    /// chunks.
    fn in_memory(&self, from: u64, to: u64) -> Option<&[u8]> {
        [
            (self.tail_start, &self.tail),
            (self.older_start, &self.older),
        ]
        .into_iter()
        .find(|(start, chunk)| *start <= from && to <= *start + chunk.len() as u64)
        .map(|(start, chunk)| &chunk[(from - start) as usize..(to - start) as usize])
    }
}

/// An open partition log.
pub(crate) struct PartitionLog {
    topic: Topic,
    partition: i32,
    path: PathBuf,
    read: File,
    state: Mutex<State>,
    /// The offset the next record will get (`State::next_offset`, published after each
    /// append), readable without the lock.
    end: AtomicI64,
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
                    written_pos: pos as u64,
                    tail: Vec::new(),
                    tail_start: pos as u64,
                    older: Vec::new(),
                    older_start: pos as u64,
                    broken: None,
                    next_offset,
                    announced: next_offset,
                }),
                end: AtomicI64::new(next_offset),
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

    /// Appends a record, returning its offset and whether readers are to be told of new
    /// records (it was written out at once: a full buffer, or `sync_writes`). The bytes are
    /// in the file (and so survive a process crash) once [`PartitionLog::flush`] returns;
    /// with `sync_writes` they are on disk when this returns.
    pub(crate) fn append(
        &self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp_ms: i64,
    ) -> Result<(i64, bool), BusError> {
        let body_len = 24 + key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len);
        if body_len as u64 > u64::from(MAX_RECORD) {
            return Err(log_err(
                &self.path,
                format!("record of {body_len} bytes exceeds the {MAX_RECORD}-byte limit"),
            ));
        }
        let mut st = self.lock();
        if let Some(why) = &st.broken {
            return Err(log_err(&self.path, why));
        }
        let offset = st.next_offset;
        let start = st.tail.len();
        let buf = &mut st.tail;
        buf.reserve(HEADER + body_len);
        buf.extend_from_slice(&(body_len as u32).to_be_bytes());
        buf.extend_from_slice(&[0; 4]);
        buf.extend_from_slice(&offset.to_be_bytes());
        buf.extend_from_slice(&timestamp_ms.to_be_bytes());
        for part in [key, value] {
            match part {
                None => buf.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(b) => {
                    buf.extend_from_slice(&(b.len() as i32).to_be_bytes());
                    buf.extend_from_slice(b);
                }
            }
        }
        let crc = crc32fast::hash(&buf[start + HEADER..]);
        buf[start + 4..start + HEADER].copy_from_slice(&crc.to_be_bytes());
        let pos = st.end_pos;
        st.index.push(Entry {
            offset,
            pos,
            len: body_len as u32,
        });
        st.end_pos += (HEADER + body_len) as u64;
        st.next_offset = offset + 1;
        self.end.store(offset + 1, Ordering::Release);
        let written = self.sync_writes || st.unwritten() >= FLUSH_AT;
        if written {
            st.write_out(&self.path)?;
        }
        if self.sync_writes {
            st.append.sync_data().map_err(|e| log_err(&self.path, e))?;
        }
        Ok((offset, written && st.announce()))
    }

    /// Writes what was appended to the file: from then on it survives a process crash.
    /// True when readers are to be told of records appended since they last were.
    pub(crate) fn flush(&self) -> Result<bool, BusError> {
        let mut st = self.lock();
        st.write_out(&self.path)?;
        Ok(st.announce())
    }

    /// The offset the next record will get (without taking the lock: a reader looks at
    /// every partition it owns for each batch it reads).
    pub(crate) fn end_offset(&self) -> i64 {
        self.end.load(Ordering::Acquire)
    }

    /// Writes what was appended to the file, and the file to disk.
    pub(crate) fn sync(&self) -> Result<(), BusError> {
        let mut st = self.lock();
        st.write_out(&self.path)?;
        st.append.sync_data().map_err(|e| log_err(&self.path, e))
    }

    /// Up to `max` records from `from` on: parsed from the tail when they are all there,
    /// else read from the file at once.
    pub(crate) fn read(&self, from: i64, max: usize) -> Result<Vec<Message>, BusError> {
        let (entries, base, to): (Vec<Entry>, u64, u64) = {
            let mut st = self.lock();
            let start = find(&st.index, from);
            let mut end = start;
            let mut bytes = 0u64;
            while end < st.index.len() && end - start < max {
                bytes += HEADER as u64 + u64::from(st.index[end].len);
                // At least one record, however large.
                if end > start && bytes > READ_AT_MOST {
                    break;
                }
                end += 1;
            }
            let records = &st.index[start..end];
            let (Some(first), Some(last)) = (records.first(), records.last()) else {
                return Ok(Vec::new());
            };
            // The records' bytes in the log: from `base` to `to`.
            let (base, to) = (first.pos, last.pos + HEADER as u64 + u64::from(last.len));
            if to > st.written_pos {
                st.write_out(&self.path)?;
            }
            if let Some(bytes) = st.in_memory(base, to) {
                return self.messages(&st.index[start..end], bytes, base);
            }
            (st.index[start..end].to_vec(), base, to)
        };
        let len = (to - base) as usize;
        let read_into = |buf: &mut [u8]| {
            self.read
                .read_exact_at(buf, base)
                .map_err(|err| log_err(&self.path, err))?;
            self.messages(&entries, buf, base)
        };
        // A read further behind goes through the thread's buffer: a new one each time was
        // zeroed (for a large one, the allocator gives the pages back and the read faults
        // them in again) before the file's bytes were copied over it.
        SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut buf) if len <= SCRATCH_AT_MOST => {
                if buf.len() < len {
                    buf.resize(len, 0);
                }
                read_into(&mut buf[..len])
            }
            _ => read_into(&mut vec![0u8; len]),
        })
    }

    /// The records of `entries` from `bytes`, the log's bytes from `base` on.
    fn messages(
        &self,
        entries: &[Entry],
        bytes: &[u8],
        base: u64,
    ) -> Result<Vec<Message>, BusError> {
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let at = (e.pos - base) as usize + HEADER;
            let (key, value, timestamp_ms) = parse_body(&bytes[at..at + e.len as usize])
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

impl Drop for PartitionLog {
    fn drop(&mut self) {
        // What was appended and not yet asked for is written as the bus closes.
        if let Err(e) = self.flush() {
            tracing::warn!(topic = %self.topic, partition = self.partition, error = %e, "records of an embedded log were not written");
        }
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
    fn a_record_is_found_by_its_offset_with_or_without_gaps() {
        let logs: [&[i64]; 5] = [
            &[],
            &[0, 1, 2, 3],
            &[5, 6, 7],
            &[0, 1, 4, 5, 9],
            &[2, 10, 11, 12, 40],
        ];
        for offsets in logs {
            let index: Vec<Entry> = offsets
                .iter()
                .map(|&offset| Entry {
                    offset,
                    pos: 0,
                    len: 0,
                })
                .collect();
            for from in -2..45 {
                assert_eq!(
                    find(&index, from),
                    index.partition_point(|e| e.offset < from),
                    "offsets {offsets:?}, from {from}"
                );
            }
        }
    }

    #[test]
    fn appends_survive_reopen_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p0.log");
        {
            let (log, warn) = PartitionLog::open(&path, Topic::Perf, 0, false).expect("open");
            assert!(warn.is_none());
            assert_eq!(log.append(Some(b"k"), Some(b"v1"), 1).expect("append").0, 0);
            assert_eq!(log.append(None, None, 2).expect("append").0, 1);
            assert_eq!(log.append(Some(b"k"), Some(b"v3"), 3).expect("append").0, 2);
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
        assert_eq!(log.append(None, Some(b"v4"), 4).expect("append").0, 3);
        assert_eq!(log.read(2, 10).expect("read").len(), 2);
        assert_eq!(log.end_offset(), 4);
    }

    fn file_len(path: &Path) -> u64 {
        std::fs::metadata(path).expect("metadata").len()
    }

    #[test]
    fn appends_are_written_in_one_go_when_asked_for_or_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p0.log");
        let (log, _) = PartitionLog::open(&path, Topic::Perf, 0, false).expect("open");
        for i in 0..3u8 {
            let (_, announce) = log
                .append(Some(&[i]), Some(b"value"), i64::from(i))
                .expect("append");
            assert!(!announce, "readers are told when the records are written");
        }
        assert_eq!(file_len(&path), 0, "held in the buffer");
        assert_eq!(log.end_offset(), 3, "yet given their offsets");
        // A reader asking for them has them written first.
        let read = log.read(1, 10).expect("read");
        assert_eq!(
            read.iter().map(|m| m.offset).collect::<Vec<_>>(),
            vec![1, 2]
        );
        let written = file_len(&path);
        assert!(written > 0);
        // The other readers are still to be told, once.
        assert!(log.flush().expect("flush"), "records not announced yet");
        assert!(!log.flush().expect("flush"), "nothing new");
        log.append(None, Some(b"later"), 9).expect("append");
        assert_eq!(file_len(&path), written, "the next one waits again");
        assert!(log.flush().expect("flush"), "a new record to tell of");
        assert!(file_len(&path) > written, "a flush writes it");
        log.append(None, Some(b"last"), 10).expect("append");
        drop(log);
        // Dropping the log (the bus closing) writes what was left.
        let (log, warn) = PartitionLog::open(&path, Topic::Perf, 0, false).expect("reopen");
        assert!(warn.is_none());
        let all = log.read(0, 10).expect("read");
        assert_eq!(all.len(), 5);
        assert_eq!(all[3].value.as_deref(), Some(&b"later"[..]));
        assert_eq!(all[4].timestamp_ms, 10);
        // A full buffer is written without being asked for.
        let before = file_len(&path);
        let big = vec![7u8; FLUSH_AT];
        let (_, announce) = log.append(None, Some(&big), 11).expect("append");
        assert!(file_len(&path) > before + FLUSH_AT as u64);
        assert!(announce, "written at once: readers are told at once");
    }

    #[test]
    fn a_read_takes_records_up_to_its_byte_limit_and_at_least_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p0.log");
        let (log, _) = PartitionLog::open(&path, Topic::Perf, 0, false).expect("open");
        let third = vec![1u8; (READ_AT_MOST / 3) as usize];
        let huge = vec![2u8; READ_AT_MOST as usize + 10];
        for v in [&third, &third, &third, &huge, &third] {
            log.append(None, Some(v), 0).expect("append");
        }
        let offsets = |from: i64, max: usize| -> Vec<i64> {
            log.read(from, max)
                .expect("read")
                .iter()
                .map(|m| m.offset)
                .collect()
        };
        assert_eq!(
            offsets(0, 10),
            vec![0, 1],
            "a third more would pass the limit"
        );
        assert_eq!(offsets(0, 1), vec![0], "the count limit first");
        assert_eq!(
            offsets(2, 10),
            vec![2],
            "the huge record waits for the next read"
        );
        assert_eq!(offsets(3, 10), vec![3], "alone, however large");
        assert_eq!(offsets(4, 10), vec![4]);
        assert_eq!(offsets(5, 10), Vec::<i64>::new(), "nothing past the end");
        let huge_read = log.read(3, 1).expect("read");
        assert_eq!(huge_read[0].value.as_deref(), Some(&huge[..]));
    }

    #[test]
    fn reads_through_the_threads_buffer_see_only_their_own_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        let open = |name: &str| {
            PartitionLog::open(&dir.path().join(name), Topic::Perf, 0, false)
                .expect("open")
                .0
        };
        let (big, small) = (open("big.log"), open("small.log"));
        // Enough behind each log's tail that reads go to its file.
        let fill = |log: &PartitionLog, records: usize, len: usize, byte: u8| {
            for i in 0..records {
                log.append(None, Some(&vec![byte; len]), i as i64)
                    .expect("append");
            }
            log.flush().expect("flush");
        };
        fill(&big, 64, 32 * 1024, 0xbb);
        fill(&small, 2048, 700, 0x55);
        // One record larger than a thread keeps a buffer for.
        big.append(None, Some(&vec![0xcc; SCRATCH_AT_MOST + 1]), 64)
            .expect("append");
        for _ in 0..2 {
            let got = big.read(0, 64).expect("read");
            assert_eq!(got.len(), 64);
            assert!(got
                .iter()
                .all(|m| m.value.as_deref() == Some(&[0xbb; 32 * 1024][..])));
            // Fewer bytes than the buffer holds from the other log's read.
            let got = small.read(3, 10).expect("read");
            let offsets: Vec<i64> = got.iter().map(|m| m.offset).collect();
            assert_eq!(offsets, (3..13).collect::<Vec<_>>());
            assert!(got
                .iter()
                .all(|m| m.value.as_deref() == Some(&[0x55; 700][..])));
            let got = big.read(64, 1).expect("read");
            assert_eq!(
                got[0].value.as_ref().map(Vec::len),
                Some(SCRATCH_AT_MOST + 1)
            );
            assert!(got[0].value.iter().flatten().all(|&b| b == 0xcc));
        }
        assert!(SCRATCH.with(|s| s.borrow().len()) <= SCRATCH_AT_MOST);
    }

    #[test]
    fn reads_from_the_tail_in_memory_are_those_from_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p0.log");
        let (log, _) = PartitionLog::open(&path, Topic::Perf, 0, false).expect("open");
        // Records of many sizes over several chunks of the tail, one far larger than a
        // chunk, flushed now and then as a producer awaiting deliveries does.
        let mut expected = Vec::new();
        for i in 0..400usize {
            let len = if i == 250 {
                3 * TAIL_CHUNK
            } else {
                (i * 7919) % 9000
            };
            let value: Vec<u8> = (0..len).map(|j| (i + j) as u8).collect();
            let key = (i % 3 != 0).then(|| i.to_be_bytes().to_vec());
            log.append(key.as_deref(), Some(&value), i as i64)
                .expect("append");
            expected.push((key, value));
            if i % 37 == 0 {
                log.flush().expect("flush");
            }
            // A reader just behind the writer, and one a few chunks behind.
            for from in [i.saturating_sub(3), i.saturating_sub(300)] {
                let got = log.read(from as i64, 5).expect("read");
                assert_eq!(got.len(), 5.min(i + 1 - from), "from {from} at {i}");
                for m in got {
                    let (key, value) = &expected[m.offset as usize];
                    assert_eq!(&m.key, key, "offset {}", m.offset);
                    assert_eq!(m.value.as_deref(), Some(&value[..]), "offset {}", m.offset);
                    assert_eq!(m.timestamp_ms, m.offset);
                }
            }
        }
        let st = log.lock();
        assert!(st.tail_start > 0, "the tail moved on");
        assert!(st.tail.len() < 2 * TAIL_CHUNK && st.older.len() < 2 * TAIL_CHUNK);
        drop(st);
        drop(log);
        let (log, warn) = PartitionLog::open(&path, Topic::Perf, 0, false).expect("reopen");
        assert!(warn.is_none());
        let mut from = 0;
        while from < 400 {
            for m in log.read(from, 64).expect("read") {
                assert_eq!(m.value.as_deref(), Some(&expected[m.offset as usize].1[..]));
                from = m.offset + 1;
            }
        }
    }

    #[test]
    fn a_failed_write_breaks_the_log_with_the_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p0.log");
        let (log, _) = PartitionLog::open(&path, Topic::Perf, 0, false).expect("open");
        log.append(None, Some(b"kept"), 1).expect("append");
        log.flush().expect("flush");
        log.append(None, Some(b"lost"), 2).expect("append");
        // The file can no longer be written (as when the disk fails).
        log.lock().append = File::open(&path).expect("read-only");
        let err = log.flush().expect_err("the write fails").to_string();
        assert!(
            err.contains("writing records at byte") && err.contains("p0.log"),
            "{err}"
        );
        let again = log.append(None, Some(b"more"), 3).expect_err("broken");
        assert!(
            again.to_string().contains("writing records at byte"),
            "{again}"
        );
        drop(log);
        let (log, warn) = PartitionLog::open(&path, Topic::Perf, 0, false).expect("reopen");
        assert!(warn.is_none(), "the file holds whole records only");
        let all = log.read(0, 10).expect("read");
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].value.as_deref(), Some(&b"kept"[..]));
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
