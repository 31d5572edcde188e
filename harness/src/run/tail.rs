//! Tailing the workers' histories while they run.
//!
//! Each worker appends one JSON line per operation to its own file; the run reads
//! the complete lines appended since the last poll, so the live audit sees every
//! finished operation without waiting for the workers to exit.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use clobber_check::history::Record;

/// Reads the complete lines a worker has appended to its history so far.
pub(crate) struct Tail {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
    /// Every record read so far, in file order.
    pub(crate) records: Vec<Record>,
    /// The latest time any record read so far vouches for.
    pub(crate) last_ns: u64,
    /// The first malformed line, if any (file and parse error).
    pub(crate) bad: Option<String>,
}

impl Tail {
    /// A tail of the (perhaps not yet created) file at `path`.
    pub(crate) fn new(path: PathBuf) -> Self {
        Self {
            path,
            offset: 0,
            partial: Vec::new(),
            records: Vec::new(),
            last_ns: 0,
            bad: None,
        }
    }

    /// Read whatever complete lines were appended since the last poll.
    pub(crate) fn poll(&mut self) {
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return;
        };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut buf = Vec::new();
        if f.read_to_end(&mut buf).is_err() {
            return;
        }
        self.offset += buf.len() as u64;
        self.partial.extend_from_slice(&buf);
        while let Some(nl) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=nl).collect();
            match serde_json::from_slice::<Record>(&line) {
                Ok(r) => {
                    self.last_ns = self.last_ns.max(r.complete_ns.unwrap_or(r.invoke_ns));
                    self.records.push(r);
                }
                Err(e) => {
                    self.bad
                        .get_or_insert_with(|| format!("{}: {e}", self.path.display()));
                }
            }
        }
    }
}
