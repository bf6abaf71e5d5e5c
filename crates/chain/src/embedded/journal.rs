//! The append-only journal of a journaled [`EmbeddedChain`](super::EmbeddedChain): every
//! state-changing operation, written and fsynced before it takes effect, replayed on open.
//!
//! File format (all integers big-endian):
//!
//! ```text
//! file   = MAGIC record*                  MAGIC = "sealbridge/embedded-chain/journal/v2\n"
//! record = len:u32 head[4] payload[len] check[32]
//!          head_i  = keccak256(HEAD_CONTEXT ‖ check_{i-1} ‖ len)[..4]
//!          check_i = keccak256(check_{i-1} ‖ payload_i),   check_{-1} = keccak256(MAGIC)
//! payload of record 0 = the chain's configuration (see `config_bytes`)
//! payload of record i>0 = op:u8 op-fields outcome block_number:u64 block_hash[32]
//! ```
//!
//! The chained check makes a flipped bit, a reordered or a removed record detectable; the header
//! check makes a changed length detectable *before* it is used to find the next record, so a
//! damaged length is never mistaken for the end of the file. The block number and hash recorded
//! with each operation are compared with the replayed ones, so a replay that diverges (another
//! EVM version, another configuration) is refused rather than silently producing another chain.
//!
//! Only a write torn by a crash is dropped: bytes at the very end of the file that can be a strict
//! prefix of one record (what landed of an append, possibly followed by zeros where the file grew
//! but the data did not land). Such a record was never acknowledged (an append returns after its
//! fsync). The dropped bytes are first saved next to the journal (`<journal>.torn-<offset>`),
//! then the file is truncated at `offset`, and both are reported in [`JournalRecovery`]. Anything
//! else that does not check is refused with the record and byte offset; the file is not changed.
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use alloy_primitives::{Address, B256, Bytes, U256, keccak256};

use crate::chain::ChainError;

/// First bytes of every journal file.
pub const MAGIC: &[u8] = b"sealbridge/embedded-chain/journal/v2\n";
/// First bytes of a journal in the format before record headers had their own check.
const MAGIC_V1: &[u8] = b"sealbridge/embedded-chain/journal/v1\n";
/// Purpose of the header check (`head` in the file format).
const HEAD_CONTEXT: &[u8] = b"sealbridge/v1/embedded-chain-journal-header";
/// Bytes before a record's payload: length and header check.
const HEADER: usize = 8;
/// Bytes after a record's payload: the chained check value.
const CHECK: usize = 32;
/// Largest record accepted (a deployment's init code is far below).
const MAX_RECORD: usize = 64 << 20;

/// One state-changing operation on the embedded chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    Deploy {
        from: Address,
        data: Bytes,
    },
    Send {
        from: Address,
        to: Address,
        data: Bytes,
    },
    SetBalance {
        address: Address,
        balance: U256,
    },
    Impersonate(Address),
    SetNextTimestamp(u64),
    AdvanceTime(u64),
    Mine(u64),
}

impl Op {
    fn tag(&self) -> u8 {
        match self {
            Self::Deploy { .. } => 1,
            Self::Send { .. } => 2,
            Self::SetBalance { .. } => 3,
            Self::Impersonate(_) => 4,
            Self::SetNextTimestamp(_) => 5,
            Self::AdvanceTime(_) => 6,
            Self::Mine(_) => 7,
        }
    }

    /// Name for error messages.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Deploy { .. } => "deploy",
            Self::Send { .. } => "send",
            Self::SetBalance { .. } => "set_balance",
            Self::Impersonate(_) => "impersonate",
            Self::SetNextTimestamp(_) => "set_next_timestamp",
            Self::AdvanceTime(_) => "advance_time",
            Self::Mine(_) => "mine",
        }
    }
}

/// What a transaction did, recorded so that replay can check it did the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub success: bool,
    pub gas_used: u64,
}

/// One journal record after the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub op: Op,
    /// For `Deploy` and `Send`.
    pub outcome: Option<Outcome>,
    /// Latest block after the operation.
    pub block_number: u64,
    pub block_hash: B256,
}

impl Entry {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.op.tag()];
        let data = |out: &mut Vec<u8>, d: &Bytes| {
            // Records are bounded by MAX_RECORD, far below u32::MAX.
            out.extend_from_slice(&(d.len() as u32).to_be_bytes());
            out.extend_from_slice(d);
        };
        match &self.op {
            Op::Deploy { from, data: d } => {
                out.extend_from_slice(from.as_slice());
                data(&mut out, d);
            }
            Op::Send { from, to, data: d } => {
                out.extend_from_slice(from.as_slice());
                out.extend_from_slice(to.as_slice());
                data(&mut out, d);
            }
            Op::SetBalance { address, balance } => {
                out.extend_from_slice(address.as_slice());
                out.extend_from_slice(&balance.to_be_bytes::<32>());
            }
            Op::Impersonate(a) => out.extend_from_slice(a.as_slice()),
            Op::SetNextTimestamp(v) | Op::AdvanceTime(v) | Op::Mine(v) => {
                out.extend_from_slice(&v.to_be_bytes())
            }
        }
        match self.outcome {
            None => out.push(0),
            Some(o) => {
                out.push(if o.success { 2 } else { 1 });
                out.extend_from_slice(&o.gas_used.to_be_bytes());
            }
        }
        out.extend_from_slice(&self.block_number.to_be_bytes());
        out.extend_from_slice(self.block_hash.as_slice());
        out
    }

    pub(crate) fn decode(b: &[u8]) -> Result<Self, String> {
        let mut r = Reader(b);
        let op = match r.u8()? {
            1 => Op::Deploy {
                from: r.address()?,
                data: r.data()?,
            },
            2 => Op::Send {
                from: r.address()?,
                to: r.address()?,
                data: r.data()?,
            },
            3 => Op::SetBalance {
                address: r.address()?,
                balance: U256::from_be_bytes(r.array::<32>()?),
            },
            4 => Op::Impersonate(r.address()?),
            5 => Op::SetNextTimestamp(r.u64()?),
            6 => Op::AdvanceTime(r.u64()?),
            7 => Op::Mine(r.u64()?),
            t => return Err(format!("unknown operation {t}")),
        };
        let outcome = match r.u8()? {
            0 => None,
            s @ (1 | 2) => Some(Outcome {
                success: s == 2,
                gas_used: r.u64()?,
            }),
            o => return Err(format!("unknown outcome {o}")),
        };
        let block_number = r.u64()?;
        let block_hash = B256::from(r.array::<32>()?);
        if !r.0.is_empty() {
            return Err(format!("{} trailing bytes", r.0.len()));
        }
        Ok(Self {
            op,
            outcome,
            block_number,
            block_hash,
        })
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if self.0.len() < n {
            return Err("record too short".into());
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    fn address(&mut self) -> Result<Address, String> {
        Ok(Address::from(self.array::<20>()?))
    }
    fn data(&mut self) -> Result<Bytes, String> {
        let n = u32::from_be_bytes(self.array()?) as usize;
        Ok(Bytes::copy_from_slice(self.take(n)?))
    }
}

/// What opening a journal found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalRecovery {
    /// The journal file.
    pub path: PathBuf,
    /// Operations replayed.
    pub replayed: u64,
    /// Bytes of a torn last record (a crash during an append that was never acknowledged)
    /// dropped from the end of the file; 0 if the file ended cleanly.
    pub torn_tail_bytes: u64,
    /// Where the dropped bytes were saved before the file was truncated
    /// (`<journal>.torn-<offset>`, `offset` being the journal's new length).
    pub torn_tail_saved: Option<PathBuf>,
}

/// The open journal file, positioned at its end.
#[derive(Debug)]
pub(crate) struct Journal {
    path: PathBuf,
    file: File,
    check: B256,
    /// Set when an append failed: the in-memory chain is ahead of the file, so every later
    /// mutation is refused.
    failed: Option<String>,
}

fn io_err(path: &Path, what: &str, e: impl std::fmt::Display) -> ChainError {
    ChainError::Transport(format!(
        "embedded chain journal {}: {what}: {e}",
        path.display()
    ))
}

fn corrupt(path: &Path, what: String) -> ChainError {
    ChainError::BadRequest(format!(
        "embedded chain journal {} is corrupt: {what}; refusing to open it",
        path.display()
    ))
}

fn corrupt_at(path: &Path, index: usize, offset: usize, what: &str) -> ChainError {
    corrupt(
        path,
        format!(
            "record {index} at byte offset {offset}: {what}; the file is left as it is \
             (restore it from a backup, or move it aside to start a new chain)"
        ),
    )
}

/// The header check of a record of `len` bytes following check value `prev`.
fn head_check(prev: &B256, len: u32) -> [u8; 4] {
    let mut pre = Vec::with_capacity(HEAD_CONTEXT.len() + 36);
    pre.extend_from_slice(HEAD_CONTEXT);
    pre.extend_from_slice(prev.as_slice());
    pre.extend_from_slice(&len.to_be_bytes());
    let h = keccak256(&pre);
    [h[0], h[1], h[2], h[3]]
}

/// The payload length of a record starting with `rest`, if its header is complete and checks.
fn header(rest: &[u8], prev: &B256) -> Option<usize> {
    let h = rest.first_chunk::<HEADER>()?;
    let len = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
    let ok = len != 0 && len as usize <= MAX_RECORD && h[4..] == head_check(prev, len);
    ok.then_some(len as usize)
}

/// Whether `rest`, running to the end of the file and without a header that checks, can be what
/// landed of one torn append: a prefix of a record's header, then zeros only, and shorter than
/// the record that header announces.
fn torn_header(rest: &[u8], prev: &B256) -> bool {
    let zeros = rest.iter().rev().take_while(|b| **b == 0).count();
    let landed = &rest[..rest.len() - zeros];
    if landed.len() >= HEADER {
        return false;
    }
    let longest = match landed.first_chunk::<4>() {
        Some(l) => {
            let len = u32::from_be_bytes(*l);
            if len == 0 || len as usize > MAX_RECORD {
                return false;
            }
            let want = head_check(prev, len);
            if landed[4..] != want[..landed.len() - 4] {
                return false;
            }
            HEADER + len as usize + CHECK
        }
        None => {
            // The smallest length these bytes can start.
            let mut l = [0u8; 4];
            l[..landed.len()].copy_from_slice(landed);
            if u32::from_be_bytes(l) as usize > MAX_RECORD {
                return false;
            }
            HEADER + MAX_RECORD + CHECK
        }
    };
    rest.len() < longest
}

/// Save `tail` (dropped from the journal at `offset`) next to it, fsynced, without overwriting
/// an earlier save.
fn save_torn_tail(path: &Path, offset: usize, tail: &[u8]) -> Result<PathBuf, ChainError> {
    for n in 0..1000u32 {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".torn-{offset}"));
        if n > 0 {
            name.push(format!(".{n}"));
        }
        let saved = PathBuf::from(name);
        match OpenOptions::new().write(true).create_new(true).open(&saved) {
            Ok(mut f) => {
                f.write_all(tail)
                    .and_then(|()| f.sync_all())
                    .map_err(|e| io_err(&saved, "saving the torn tail", e))?;
                sync_dir(&saved);
                return Ok(saved);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err(&saved, "saving the torn tail", e)),
        }
    }
    Err(io_err(
        path,
        "saving the torn tail",
        "too many earlier .torn files",
    ))
}

fn next_check(prev: &B256, payload: &[u8]) -> B256 {
    let mut pre = Vec::with_capacity(32 + payload.len());
    pre.extend_from_slice(prev.as_slice());
    pre.extend_from_slice(payload);
    keccak256(&pre)
}

fn frame(prev: &B256, payload: &[u8]) -> (Vec<u8>, B256) {
    let check = next_check(prev, payload);
    let mut rec = Vec::with_capacity(HEADER + payload.len() + CHECK);
    // Payloads are bounded by MAX_RECORD.
    let len = payload.len() as u32;
    rec.extend_from_slice(&len.to_be_bytes());
    rec.extend_from_slice(&head_check(prev, len));
    rec.extend_from_slice(payload);
    rec.extend_from_slice(check.as_slice());
    (rec, check)
}

fn sync_dir(path: &Path) {
    // Make the directory entry of a new file durable (best effort: not every platform allows
    // opening a directory).
    if let Some(dir) = path.parent()
        && let Ok(d) = File::open(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        })
    {
        let _ = d.sync_all();
    }
}

impl Journal {
    /// Create a new journal holding `config`: written to a temporary file, fsynced and renamed
    /// into place, so a crash leaves either no journal or a complete header.
    pub(crate) fn create(path: &Path, config: &[u8]) -> Result<Self, ChainError> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let (rec, check) = frame(&keccak256(MAGIC), config);
        {
            let mut f = File::create(&tmp).map_err(|e| io_err(&tmp, "create", e))?;
            f.write_all(MAGIC)
                .and_then(|()| f.write_all(&rec))
                .and_then(|()| f.sync_all())
                .map_err(|e| io_err(&tmp, "write", e))?;
        }
        std::fs::rename(&tmp, path).map_err(|e| io_err(path, "rename", e))?;
        sync_dir(path);
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| io_err(path, "open", e))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            check,
            failed: None,
        })
    }

    /// Open an existing journal: check its records, require `config`, drop a torn tail.
    /// Returns the journal (positioned for appending), its entries and what was found.
    pub(crate) fn open(
        path: &Path,
        config: &[u8],
    ) -> Result<(Self, Vec<Entry>, JournalRecovery), ChainError> {
        let mut bytes = Vec::new();
        File::open(path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|e| io_err(path, "read", e))?;
        let Some(mut rest) = bytes.strip_prefix(MAGIC) else {
            if bytes.starts_with(MAGIC_V1) {
                return Err(corrupt(
                    path,
                    "written in format v1 by an earlier build, which this one does not read \
                     (move it aside to start a new chain)"
                        .into(),
                ));
            }
            return Err(corrupt(path, "not a journal (bad magic)".into()));
        };
        let mut check = keccak256(MAGIC);
        let mut payloads: Vec<&[u8]> = Vec::new();
        let mut good_len = MAGIC.len();
        let mut torn = false;
        while !rest.is_empty() {
            let index = payloads.len();
            let Some(len) = header(rest, &check) else {
                if torn_header(rest, &check) {
                    torn = true;
                    break;
                }
                return Err(corrupt_at(
                    path,
                    index,
                    good_len,
                    "the record header does not check (changed length?)",
                ));
            };
            let Some(record) = rest.get(..HEADER + len + CHECK) else {
                // A strict prefix of the one record its header announces, at the end.
                torn = true;
                break;
            };
            let (payload, stored) = record[HEADER..].split_at(len);
            let expect = next_check(&check, payload);
            if stored != expect.as_slice() {
                if record.len() == rest.len() && stored.iter().all(|b| *b == 0) {
                    // The last record, whose end never landed.
                    torn = true;
                    break;
                }
                return Err(corrupt_at(
                    path,
                    index,
                    good_len,
                    "check value mismatch (changed, reordered or removed)",
                ));
            }
            check = expect;
            payloads.push(payload);
            good_len += record.len();
            rest = &rest[record.len()..];
        }
        let Some((&stored_config, ops)) = payloads.split_first() else {
            return Err(corrupt(path, "no configuration record".into()));
        };
        if stored_config != config {
            return Err(ChainError::BadRequest(format!(
                "embedded chain journal {} was created with another configuration \
                 (chain id, hardfork, genesis, dev accounts); refusing to replay it under this one",
                path.display()
            )));
        }
        let entries = ops
            .iter()
            .enumerate()
            .map(|(i, p)| {
                Entry::decode(p).map_err(|e| corrupt(path, format!("record {}: {e}", i + 1)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let tail = bytes.get(good_len..).filter(|_| torn).unwrap_or_default();
        let mut torn_tail_saved = None;
        if !tail.is_empty() {
            // Saved before the truncation: a wrong guess loses nothing.
            torn_tail_saved = Some(save_torn_tail(path, good_len, tail)?);
            let file = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| io_err(path, "open", e))?;
            file.set_len(good_len as u64)
                .and_then(|()| file.sync_all())
                .map_err(|e| io_err(path, "truncating the torn tail", e))?;
        }
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| io_err(path, "open", e))?;
        let recovery = JournalRecovery {
            path: path.to_path_buf(),
            replayed: entries.len() as u64,
            torn_tail_bytes: tail.len() as u64,
            torn_tail_saved,
        };
        Ok((
            Self {
                path: path.to_path_buf(),
                file,
                check,
                failed: None,
            },
            entries,
            recovery,
        ))
    }

    /// Refuse if an earlier append failed.
    pub(crate) fn usable(&self) -> Result<(), ChainError> {
        match &self.failed {
            Some(e) => Err(ChainError::Transport(format!(
                "embedded chain journal {}: an earlier write failed ({e}); the chain refuses \
                 changes until it is reopened",
                self.path.display()
            ))),
            None => Ok(()),
        }
    }

    /// Append `entry` and fsync it.
    pub(crate) fn append(&mut self, entry: &Entry) -> Result<(), ChainError> {
        self.usable()?;
        let (rec, check) = frame(&self.check, &entry.encode());
        match self
            .file
            .write_all(&rec)
            .and_then(|()| self.file.sync_data())
        {
            Ok(()) => {
                self.check = check;
                Ok(())
            }
            Err(e) => {
                self.failed = Some(e.to_string());
                Err(io_err(&self.path, "append", e))
            }
        }
    }

    /// The file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Test hook: make every later write fail (the file handle becomes read-only), like a full
    /// or failing disk.
    #[cfg(test)]
    pub(crate) fn break_writes(&mut self) {
        self.file = File::open(&self.path).expect("reopen the journal read-only");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Entry> {
        vec![
            Entry {
                op: Op::Deploy {
                    from: Address::repeat_byte(1),
                    data: Bytes::from(vec![0x60, 0x00]),
                },
                outcome: Some(Outcome {
                    success: true,
                    gas_used: 53_000,
                }),
                block_number: 1,
                block_hash: B256::repeat_byte(0xaa),
            },
            Entry {
                op: Op::Send {
                    from: Address::repeat_byte(1),
                    to: Address::repeat_byte(2),
                    data: Bytes::new(),
                },
                outcome: Some(Outcome {
                    success: false,
                    gas_used: 21_000,
                }),
                block_number: 2,
                block_hash: B256::repeat_byte(0xbb),
            },
            Entry {
                op: Op::SetBalance {
                    address: Address::repeat_byte(3),
                    balance: U256::MAX,
                },
                outcome: None,
                block_number: 2,
                block_hash: B256::repeat_byte(0xbb),
            },
            Entry {
                op: Op::Impersonate(Address::repeat_byte(4)),
                outcome: None,
                block_number: 2,
                block_hash: B256::repeat_byte(0xbb),
            },
            Entry {
                op: Op::SetNextTimestamp(u64::MAX),
                outcome: None,
                block_number: 2,
                block_hash: B256::ZERO,
            },
            Entry {
                op: Op::AdvanceTime(7),
                outcome: None,
                block_number: 2,
                block_hash: B256::ZERO,
            },
            Entry {
                op: Op::Mine(300),
                outcome: None,
                block_number: 302,
                block_hash: B256::repeat_byte(0xcc),
            },
        ]
    }

    #[test]
    fn entries_round_trip_and_reject_truncation() {
        for e in sample() {
            let b = e.encode();
            assert_eq!(Entry::decode(&b).unwrap(), e);
            for cut in 0..b.len() {
                assert!(Entry::decode(&b[..cut]).is_err(), "{e:?} cut at {cut}");
            }
            let mut longer = b.clone();
            longer.push(0);
            assert!(Entry::decode(&longer).is_err());
        }
    }
}
