//! A journaled [`EmbeddedChain`]: survives restarts by replaying its journal (see
//! [`journal`](super::journal) for the file format and its checks).

use std::path::Path;

use alloy_primitives::B256;

use super::journal::{Entry, Journal, JournalRecovery, Op, Outcome};
use super::{EmbeddedChain, EmbeddedConfig};
use crate::chain::{Chain, ChainError};

/// The configuration as the journal's first record: chain id, hardfork, genesis timestamp,
/// block time, number of dev accounts (u64 BE each, hardfork as one byte), dev balance (32 bytes).
fn config_bytes(c: &EmbeddedConfig) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 * 4 + 1 + 32);
    out.extend_from_slice(&c.chain_id.to_be_bytes());
    out.push(c.spec as u8);
    out.extend_from_slice(&c.genesis_timestamp.to_be_bytes());
    out.extend_from_slice(&c.block_time.to_be_bytes());
    out.extend_from_slice(&(c.dev_accounts as u64).to_be_bytes());
    out.extend_from_slice(&c.dev_balance.to_be_bytes::<32>());
    out
}

impl EmbeddedChain {
    /// A chain that survives restarts: every state-changing operation (deploy, send,
    /// set_balance, impersonate, set_next_timestamp, advance_time, mine) is appended to the
    /// journal at `path` and fsynced before the call returns.
    ///
    /// If `path` does not exist, a new chain with `config` is created there. Otherwise the
    /// journal is replayed: it must have been created with the same `config`, every record must
    /// pass its check value, and every replayed operation must end on the block number and hash
    /// (and transaction outcome) it recorded — else this refuses with an error saying which
    /// record. A torn last record (a crash in the middle of an append, never acknowledged) is
    /// dropped from the file and reported in [`Self::journal_recovery`].
    ///
    /// `Clone` of a journaled chain is an in-memory snapshot without the journal.
    pub fn open_journaled(
        path: impl AsRef<Path>,
        config: EmbeddedConfig,
    ) -> Result<Self, ChainError> {
        let path = path.as_ref();
        let cfg = config_bytes(&config);
        let exists = path.try_exists().map_err(|e| {
            ChainError::Transport(format!("embedded chain journal {}: {e}", path.display()))
        })?;
        let mut chain = Self::with_config(config);
        if !exists {
            chain.journal = Some(Journal::create(path, &cfg)?);
            chain.recovery = Some(JournalRecovery {
                path: path.to_path_buf(),
                replayed: 0,
                torn_tail_bytes: 0,
                torn_tail_saved: None,
            });
            return Ok(chain);
        }
        let (journal, entries, recovery) = Journal::open(path, &cfg)?;
        for (i, e) in entries.iter().enumerate() {
            let index = i + 1;
            let outcome = chain.apply(&e.op).map_err(|err| {
                ChainError::BadRequest(format!(
                    "embedded chain journal {}: record {index} ({}) fails on replay: {err}; \
                     refusing to open it",
                    path.display(),
                    e.op.name()
                ))
            })?;
            let latest = chain.latest();
            if outcome != e.outcome
                || latest.number != e.block_number
                || latest.hash != e.block_hash
            {
                return Err(ChainError::BadRequest(format!(
                    "embedded chain journal {}: record {index} ({}) replays to block {} {} \
                     ({outcome:?}) but the journal recorded block {} {} ({:?}): replay is not \
                     deterministic (another EVM version?); refusing to open it",
                    path.display(),
                    e.op.name(),
                    latest.number,
                    latest.hash,
                    e.block_number,
                    e.block_hash,
                    e.outcome
                )));
            }
        }
        chain.journal = Some(journal);
        chain.recovery = Some(recovery);
        Ok(chain)
    }

    /// For a journaled chain: what opening it found (operations replayed, torn tail dropped).
    pub fn journal_recovery(&self) -> Option<&JournalRecovery> {
        self.recovery.as_ref()
    }

    /// For a journaled chain: the journal file.
    pub fn journal_path(&self) -> Option<&Path> {
        self.journal.as_ref().map(Journal::path)
    }

    /// Perform `op` (the chain is not journaling while it replays).
    fn apply(&mut self, op: &Op) -> Result<Option<Outcome>, ChainError> {
        let outcome = |r: crate::chain::TxReceipt| {
            Some(Outcome {
                success: r.success,
                gas_used: r.gas_used,
            })
        };
        Ok(match op {
            Op::Deploy { from, data } => outcome(self.deploy(*from, data.clone())?),
            Op::Send { from, to, data } => outcome(self.send(*from, *to, data.clone())?),
            Op::SetBalance { address, balance } => {
                self.try_set_balance(*address, *balance)?;
                None
            }
            Op::Impersonate(a) => {
                self.try_impersonate(*a)?;
                None
            }
            Op::SetNextTimestamp(t) => {
                self.set_next_timestamp(*t)?;
                None
            }
            Op::AdvanceTime(s) => {
                self.try_advance_time(*s)?;
                None
            }
            Op::Mine(n) => {
                self.try_mine(*n)?;
                None
            }
        })
    }

    /// Refuse changes when an earlier journal append failed.
    pub(super) fn writable(&self) -> Result<(), ChainError> {
        self.journal.as_ref().map_or(Ok(()), Journal::usable)
    }

    /// Append `op` to the journal, if any, with the latest block it leads to and what it did,
    /// and fsync it: called *before* the operation takes effect, so nothing a reader can see is
    /// missing from the file. On an error the operation must not be applied.
    pub(super) fn journal_append(
        &mut self,
        op: Op,
        outcome: Option<Outcome>,
        block_number: u64,
        block_hash: B256,
    ) -> Result<(), ChainError> {
        match self.journal.as_mut() {
            None => Ok(()),
            Some(j) => j.append(&Entry {
                op,
                outcome,
                block_number,
                block_hash,
            }),
        }
    }

    /// [`Self::journal_append`] for an operation that mines no block.
    pub(super) fn journal_append_unmined(&mut self, op: Op) -> Result<(), ChainError> {
        let (number, hash) = {
            let l = self.latest();
            (l.number, l.hash)
        };
        self.journal_append(op, None, number, hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::{B256, Bytes};

    /// A journal whose records are intact (check values chain) but whose recorded results differ
    /// from what replay produces: refused, naming the record.
    #[test]
    fn divergent_replay_is_refused() {
        let dir = std::env::temp_dir().join(format!("sealbridge-durable-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("j");
        let config = EmbeddedConfig::default();
        let mut reference = EmbeddedChain::with_config(config.clone());
        reference.mine(1);
        let good = Entry {
            op: Op::Mine(1),
            outcome: None,
            block_number: 1,
            block_hash: reference.latest().hash,
        };
        let a = reference.dev_address(0);
        let r = reference.send(a, a, Bytes::new()).unwrap();
        let send = Entry {
            op: Op::Send {
                from: a,
                to: a,
                data: Bytes::new(),
            },
            outcome: Some(Outcome {
                success: true,
                gas_used: r.gas_used,
            }),
            block_number: 2,
            block_hash: r.block_hash,
        };
        let cases = [
            (
                Entry {
                    block_hash: B256::repeat_byte(9),
                    ..send.clone()
                },
                "not deterministic",
            ),
            (
                Entry {
                    outcome: Some(Outcome {
                        success: false,
                        gas_used: r.gas_used,
                    }),
                    ..send.clone()
                },
                "not deterministic",
            ),
            (
                Entry {
                    op: Op::Send {
                        from: alloy_primitives::Address::repeat_byte(7),
                        to: a,
                        data: Bytes::new(),
                    },
                    ..send.clone()
                },
                "fails on replay",
            ),
        ];
        // The honest journal opens.
        let mut j = Journal::create(&path, &config_bytes(&config)).unwrap();
        j.append(&good).unwrap();
        j.append(&send).unwrap();
        drop(j);
        let c = EmbeddedChain::open_journaled(&path, config.clone()).unwrap();
        assert_eq!(c.block_hash(2).unwrap(), Some(r.block_hash));
        drop(c);
        for (bad, want) in cases {
            std::fs::remove_file(&path).unwrap();
            let mut j = Journal::create(&path, &config_bytes(&config)).unwrap();
            j.append(&good).unwrap();
            j.append(&bad).unwrap();
            drop(j);
            let err = EmbeddedChain::open_journaled(&path, config.clone()).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains("record 2") && msg.contains(want), "{msg}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Everything a reader of the chain can see (and the sender's nonce).
    fn seen(
        c: &EmbeddedChain,
        who: &[alloy_primitives::Address],
    ) -> impl PartialEq + std::fmt::Debug + use<> {
        let head = c.block_number().unwrap();
        (
            head,
            c.block_timestamp().unwrap(),
            (0..=head + 3)
                .map(|n| c.block_hash(n).unwrap())
                .collect::<Vec<_>>(),
            who.iter()
                .map(|a| {
                    (
                        c.balance(*a).unwrap(),
                        c.nonce_of(*a),
                        c.unlocked.contains(a),
                    )
                })
                .collect::<Vec<_>>(),
            c.logs.len(),
            c.receipts.len(),
            c.next_timestamp,
        )
    }

    /// An operation whose journal append fails is not applied: readers never see a change that
    /// a reopened chain would not have, and the chain refuses changes from then on.
    #[test]
    fn a_failed_append_changes_nothing() {
        type Op = fn(&mut EmbeddedChain) -> Result<(), ChainError>;
        let ops: [(&str, Op); 6] = [
            ("send", |c| {
                let (a, b) = (c.dev_address(0), c.dev_address(1));
                c.send(a, b, Bytes::from(vec![1u8])).map(|_| ())
            }),
            ("deploy", |c| {
                let a = c.dev_address(0);
                c.deploy(a, Bytes::from(vec![0x5f, 0x5f, 0xf3])).map(|_| ())
            }),
            ("mine", |c| c.try_mine(3)),
            ("set_balance", |c| {
                let b = c.dev_address(1);
                c.try_set_balance(b, alloy_primitives::U256::from(1u64))
            }),
            ("impersonate", |c| {
                c.try_impersonate(alloy_primitives::Address::repeat_byte(0x99))
            }),
            ("advance_time", |c| c.try_advance_time(100)),
        ];
        let dir =
            std::env::temp_dir().join(format!("sealbridge-durable-fail-{}", std::process::id()));
        for (name, op) in ops {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join("j");
            let mut c = EmbeddedChain::open_journaled(&path, EmbeddedConfig::default()).unwrap();
            let who = [
                c.dev_address(0),
                c.dev_address(1),
                alloy_primitives::Address::repeat_byte(0x99),
            ];
            let (a, b) = (who[0], who[1]);
            c.send(a, b, Bytes::new()).unwrap();
            let before = seen(&c, &who);
            c.journal.as_mut().unwrap().break_writes();
            let err = op(&mut c).expect_err(name);
            assert!(err.to_string().contains("append"), "{name}: {err}");
            assert_eq!(
                seen(&c, &who),
                before,
                "{name} is visible after a failed append"
            );
            // Refused from then on, still without a change.
            assert!(c.send(a, b, Bytes::new()).is_err(), "{name}");
            assert!(c.try_mine(1).is_err(), "{name}");
            assert_eq!(seen(&c, &who), before, "{name}");
            // The file is the truth: reopened, the chain is what readers saw.
            drop(c);
            let c = EmbeddedChain::open_journaled(&path, EmbeddedConfig::default()).unwrap();
            assert_eq!(seen(&c, &who), before, "{name} after reopen");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
