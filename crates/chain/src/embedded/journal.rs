//! The append-only journal of a journaled [`EmbeddedChain`](super::EmbeddedChain): every
//! state-changing operation, written and fsynced before the call returns, replayed on open.
//!
//! File format (all integers big-endian):
//!
//! ```text
//! file   = MAGIC record*                      MAGIC = "sealbridge/embedded-chain/journal/v1\n"
//! record = len:u32 payload[len] check[32]     check_i = keccak256(check_{i-1} ‖ payload_i),
//!                                             check_{-1} = keccak256(MAGIC)
//! payload of record 0 = the chain's configuration (see `config_bytes`)
//! payload of record i>0 = op:u8 op-fields outcome block_number:u64 block_hash[32]
//! ```
//!
//! The chained check makes a flipped bit, a reordered or a removed record detectable; the block
//! number and hash recorded after each operation are compared with the replayed ones, so a
//! replay that diverges (another EVM version, another configuration) is refused rather than
//! silently producing another chain. A record that runs past the end of the file is a write torn
//! by a crash: it was never acknowledged, so it is dropped (the file is truncated) and reported.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use alloy_primitives::{Address, B256, Bytes, U256, keccak256};

use crate::chain::ChainError;

/// First bytes of every journal file.
pub const MAGIC: &[u8] = b"sealbridge/embedded-chain/journal/v1\n";
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

fn next_check(prev: &B256, payload: &[u8]) -> B256 {
    let mut pre = Vec::with_capacity(32 + payload.len());
    pre.extend_from_slice(prev.as_slice());
    pre.extend_from_slice(payload);
    keccak256(&pre)
}

fn frame(prev: &B256, payload: &[u8]) -> (Vec<u8>, B256) {
    let check = next_check(prev, payload);
    let mut rec = Vec::with_capacity(4 + payload.len() + 32);
    // Payloads are bounded by MAX_RECORD.
    rec.extend_from_slice(&(payload.len() as u32).to_be_bytes());
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
            return Err(corrupt(path, "not a journal (bad magic)".into()));
        };
        let mut check = keccak256(MAGIC);
        let mut payloads: Vec<&[u8]> = Vec::new();
        let mut good_len = MAGIC.len();
        let mut torn = 0u64;
        while !rest.is_empty() {
            let index = payloads.len();
            let len = match rest.first_chunk::<4>() {
                Some(l) => u32::from_be_bytes(*l) as usize,
                None => {
                    torn = rest.len() as u64;
                    break;
                }
            };
            if len == 0 || len > MAX_RECORD {
                // A zero-filled tail (a crash after the file grew but before the data landed)
                // is a torn write; any other impossible length is corruption.
                if rest.iter().all(|b| *b == 0) {
                    torn = rest.len() as u64;
                    break;
                }
                return Err(corrupt(path, format!("record {index}: length {len}")));
            }
            let Some(record) = rest.get(..4 + len + 32) else {
                torn = rest.len() as u64;
                break;
            };
            let (payload, stored) = record[4..].split_at(len);
            let expect = next_check(&check, payload);
            if stored != expect.as_slice() {
                return Err(corrupt(
                    path,
                    format!("record {index}: check value mismatch (changed, reordered or removed)"),
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
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| io_err(path, "open", e))?;
        if torn > 0 {
            file.set_len(good_len as u64)
                .and_then(|()| file.sync_all())
                .map_err(|e| io_err(path, "truncating the torn tail", e))?;
        }
        drop(file);
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| io_err(path, "open", e))?;
        let recovery = JournalRecovery {
            path: path.to_path_buf(),
            replayed: entries.len() as u64,
            torn_tail_bytes: torn,
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
