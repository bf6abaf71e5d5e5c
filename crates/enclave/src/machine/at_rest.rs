//! Forward secrecy at rest, the enclave's side (issue 11 part 4): which epochs' input keys are
//! still needed, sealing accepted inputs under them for the journal, and erasing them once the
//! statements holding their inputs have settled with the required confirmations.
//!
//! An epoch's input key is erased when the epoch is not the current one, its KEM key is gone
//! too (retired at the end of its grace window, or dropped by a jump: while the KEM secret is
//! held, a snapshot holds it and whoever recorded the envelopes could open them with the root
//! secret, so erasing the input key alone would promise what the disk does not keep), none of
//! its inputs is in the open (uncut) batch, and every statement holding its inputs has a
//! sequence at most the settled-through sequence the host reported ([`Request::Settled`]). An
//! epoch that never accepted an input is erased as soon as it stops being current and its KEM
//! key is gone. The check runs on every `Settled`, rotation and retirement; each erasure is
//! journaled as the public fact [`Step::Erase`] and counted (`EnclaveStatus::erased_epochs`,
//! monotone, in snapshots and restored by replay), so the host sees an erasure whatever request
//! made it and can store the next snapshot alone.
//!
//! [`Request::Settled`]: crate::boundary::Request::Settled

use std::collections::BTreeMap;

use sealbridge_programs::Program;
use sealbridge_proto::{Epoch, Nonce, SenderId};

use super::Enclave;
use crate::{
    Error,
    epochs::InputKey,
    persist::{self, InputKeyParts, SealedInput, Step},
};

/// An input key still needed, with what it is needed for.
struct Retained {
    key: InputKey,
    /// Highest statement sequence holding one of its inputs (`None`: none cut yet).
    highest: Option<u64>,
    /// Inputs of this epoch are in the open (uncut) batch.
    open: bool,
}

/// The input keys the enclave still holds, the settled-through sequence and how many input
/// keys were erased since boot.
pub(super) struct InputKeys {
    keys: BTreeMap<Epoch, Retained>,
    settled_through: u64,
    erased: u64,
}

impl InputKeys {
    /// Only the current epoch's key, nothing settled.
    pub(super) fn new(current: Epoch, key: InputKey) -> Self {
        let mut keys = BTreeMap::new();
        keys.insert(
            current,
            Retained {
                key,
                highest: None,
                open: false,
            },
        );
        Self {
            keys,
            settled_through: 0,
            erased: 0,
        }
    }

    /// A new current epoch's key (after a rotation).
    pub(super) fn add(&mut self, epoch: Epoch, key: InputKey) {
        self.keys.entry(epoch).or_insert(Retained {
            key,
            highest: None,
            open: false,
        });
    }

    pub(super) fn key(&self, epoch: Epoch) -> Option<&InputKey> {
        self.keys.get(&epoch).map(|r| &r.key)
    }

    /// An input of `epoch` joined the open batch.
    pub(super) fn note_input(&mut self, epoch: Epoch) {
        if let Some(r) = self.keys.get_mut(&epoch) {
            r.open = true;
        }
    }

    /// The open batch was cut into statement `sequence`.
    pub(super) fn on_cut(&mut self, sequence: u64) {
        for r in self.keys.values_mut().filter(|r| r.open) {
            r.open = false;
            r.highest = Some(sequence);
        }
    }

    /// Raise settled-through to `through`; `false` if that is not higher than before.
    pub(super) fn settle(&mut self, through: u64) -> bool {
        if through > self.settled_through {
            self.settled_through = through;
            true
        } else {
            false
        }
    }

    pub(super) fn settled_through(&self) -> u64 {
        self.settled_through
    }

    /// Input keys erased since boot.
    pub(super) fn erased(&self) -> u64 {
        self.erased
    }

    /// Epochs whose input key is no longer needed (see the module docs): `current` and
    /// `in_grace` (the previous epoch while its KEM key is held) never are.
    fn spent(&self, current: Epoch, in_grace: Option<Epoch>) -> Vec<Epoch> {
        self.keys
            .iter()
            .filter(|(e, r)| {
                **e != current
                    && Some(**e) != in_grace
                    && !r.open
                    && r.highest.is_none_or(|h| h <= self.settled_through)
            })
            .map(|(e, _)| *e)
            .collect()
    }

    /// Drop (and zeroise) the key of `epoch` and count it; `false` if it was not held.
    pub(super) fn erase(&mut self, epoch: Epoch) -> bool {
        let held = self.keys.remove(&epoch).is_some();
        if held {
            self.erased = self.erased.saturating_add(1);
        }
        held
    }

    /// Epochs whose input key is held, ascending.
    pub(super) fn epochs(&self) -> Vec<Epoch> {
        self.keys.keys().copied().collect()
    }

    pub(super) fn parts(&self) -> Vec<InputKeyParts> {
        self.keys
            .iter()
            .map(|(e, r)| InputKeyParts {
                epoch: *e,
                key: *r.key.expose(),
                highest: r.highest,
                open: r.open,
            })
            .collect()
    }

    pub(super) fn from_parts(parts: &[InputKeyParts], settled_through: u64, erased: u64) -> Self {
        let keys = parts
            .iter()
            .map(|p| {
                (
                    p.epoch,
                    Retained {
                        key: InputKey::from_bytes(p.key),
                        highest: p.highest,
                        open: p.open,
                    },
                )
            })
            .collect();
        Self {
            keys,
            settled_through,
            erased,
        }
    }
}

impl<P: Program> Enclave<P> {
    /// Epochs whose input key the enclave still holds, ascending (public facts: the journal
    /// records every rotation and erasure).
    pub fn input_key_epochs(&self) -> Vec<u64> {
        self.inputs.epochs().into_iter().map(|e| e.0).collect()
    }

    /// The settled-through sequence the host last reported (after clamping).
    pub fn settled_through(&self) -> u64 {
        self.inputs.settled_through()
    }

    /// Input keys erased since boot (monotone).
    pub fn erased_epochs(&self) -> u64 {
        self.inputs.erased()
    }

    /// Erase every input key no longer needed, journaling each erasure; the epochs erased.
    pub(super) fn erase_spent(&mut self) -> Vec<u64> {
        let spent = self
            .inputs
            .spent(self.epochs.current(), self.epochs.in_grace());
        for epoch in &spent {
            self.inputs.erase(*epoch);
            self.record(Step::Erase { epoch: *epoch });
        }
        spent.into_iter().map(|e| e.0).collect()
    }

    /// After a rotation: hold the new current epoch's input key.
    pub(super) fn rotated_input_keys(&mut self) {
        let current = self.epochs.current();
        self.inputs.add(current, self.epochs.head().input_key());
    }

    /// [`Request::Settled`](crate::boundary::Request::Settled): the host says statements
    /// `1..=sequence` settled with the required confirmations. Clamped to the last statement
    /// this enclave signed; a value at or below the settled-through it already has changes
    /// nothing. Returns (settled-through, epochs erased now).
    pub(super) fn settled(&mut self, sequence: u64) -> (u64, Vec<u64>) {
        let through = sequence.min(self.sequence);
        if !self.inputs.settle(through) {
            return (self.inputs.settled_through(), Vec::new());
        }
        self.record(Step::Settled { through });
        let erased = self.erase_spent();
        (through, erased)
    }

    /// The journal step of an input accepted now: sealed under the current epoch's input key
    /// for the record being built. `None` unless durable.
    pub(super) fn sealed_input_step(
        &mut self,
        sender: SenderId,
        nonce: Nonce,
        expires_at: u64,
        payload: &[u8],
    ) -> Result<Option<Step>, Error> {
        let Some(j) = self.journal.as_ref() else {
            return Ok(None);
        };
        let epoch = self.epochs.current();
        let key = self
            .inputs
            .key(epoch)
            .ok_or(Error::Replay("the current epoch has no input key"))?;
        let plain = persist::to_cbor(&SealedInput {
            sender,
            nonce,
            expires_at,
            payload: payload.to_vec(),
        })
        .ok_or(Error::Malformed("sealed input"))?;
        let aad = persist::sealed_input_aad(self.instance.as_bytes(), epoch, j.next);
        let sealed = key.sealing().seal(&aad, &plain, &mut self.rng);
        Ok(Some(Step::Input { epoch, sealed }))
    }

    /// Remember an authenticated envelope the program refused, as an accepted one is remembered
    /// (replay set, journaled sealed like an input): its sender holds a signed rejection, so a
    /// host that kept the envelope must not get it accepted later, e.g. after a deposit.
    pub(super) fn remember_rejected(
        &mut self,
        sender: SenderId,
        header: &sealbridge_proto::EnvelopeHeader,
    ) -> Result<(), Error> {
        self.replay.insert(sender, header.nonce, header.expires_at);
        if let Some(Step::Input { epoch, sealed }) =
            self.sealed_input_step(sender, header.nonce, header.expires_at, &[])?
        {
            self.record(Step::Remember { epoch, sealed });
        }
        Ok(())
    }

    /// Open an input sealed in journal record `record` (replay).
    pub(super) fn open_sealed_input(
        &self,
        epoch: Epoch,
        sealed: &[u8],
        record: u64,
    ) -> Result<SealedInput, Error> {
        let key = self.inputs.key(epoch).ok_or(Error::Replay(
            "journal record holds an input sealed under an erased epoch key",
        ))?;
        let aad = persist::sealed_input_aad(self.instance.as_bytes(), epoch, record);
        let plain = key
            .sealing()
            .open(&aad, sealed)
            .map_err(|_| Error::Replay("a sealed input in the journal record does not open"))?;
        persist::from_cbor(&plain).ok_or(Error::Replay("a sealed input does not decode"))
    }
}

#[cfg(test)]
mod tests {
    use alloy_primitives::Address;
    use rand_chacha::ChaCha20Rng;
    use rand_core::{CryptoRngCore, RngCore, SeedableRng};
    use sealbridge_programs::netting::{Netting, NettingConfig, Obligation, Participant};
    use sealbridge_proto::{EnvelopeHeader, ProgramId, TraceId};
    use sealbridge_seal::{
        at_rest::{RootSecret, SealingKey},
        envelope,
        keys::Ed25519SigningKey,
    };

    use super::*;
    use crate::{
        EnclavePolicy, SettlementTarget,
        boundary::{ChainEvent, Request, Response},
        persist::{JournalRecord, SEAL_PURPOSE_JOURNAL},
    };

    const T0: u64 = 1_700_000_000;
    const TOKEN: Address = Address::repeat_byte(0xee);
    const TARGET: SettlementTarget = SettlementTarget {
        chain_id: 7,
        settlement: Address::repeat_byte(0x5e),
    };
    const ROOT: [u8; 32] = [3; 32];

    fn boxed(seed: u64) -> Box<dyn CryptoRngCore + Send> {
        Box::new(ChaCha20Rng::seed_from_u64(seed))
    }

    struct Live {
        e: Enclave<Netting>,
        policy: EnclavePolicy,
        users: Vec<Ed25519SigningKey>,
        rng: ChaCha20Rng,
        records: Vec<JournalRecord>,
        /// Every chain key, KEM secret and input key the enclave held after any request.
        secrets: Vec<[u8; 32]>,
        now: u64,
    }

    impl Live {
        fn new() -> Self {
            let mut rng = ChaCha20Rng::seed_from_u64(11);
            let users: Vec<_> = (0..3)
                .map(|_| Ed25519SigningKey::generate(&mut rng))
                .collect();
            let mut policy = EnclavePolicy::new(
                NettingConfig {
                    participants: users
                        .iter()
                        .zip(1u8..)
                        .map(|(k, i)| Participant {
                            sender: k.public().sender_id(),
                            account: Address::repeat_byte(i),
                        })
                        .collect(),
                    tokens: vec![TOKEN],
                },
                100,
            );
            policy.epoch_secs = 1_000;
            policy.epoch_grace_secs = 100;
            let root = RootSecret::from_bytes(ROOT);
            let e = Enclave::boot_durable(
                policy.clone(),
                Netting::new(&policy.netting),
                TARGET,
                boxed(1),
                T0,
                &root,
            )
            .unwrap();
            let mut live = Self {
                e,
                policy,
                users,
                rng,
                records: Vec::new(),
                secrets: Vec::new(),
                now: T0,
            };
            for i in 1..=3u8 {
                live.call(Request::Chain(ChainEvent::Deposit {
                    account: Address::repeat_byte(i),
                    token: TOKEN,
                    amount: 100,
                }));
            }
            live
        }

        fn call(&mut self, r: Request) -> Response {
            let Response::Journaled {
                response, record, ..
            } = self.e.handle(Request::Journaled(Box::new(r)))
            else {
                panic!("not journaled");
            };
            self.records.extend(record);
            self.secrets.push(*self.e.epochs.head().expose());
            self.secrets.extend(self.e.epochs.kem_secrets());
            for p in self.e.inputs.parts() {
                self.secrets.push(p.key);
            }
            *response
        }

        fn submit(&mut self, from: usize) {
            let desc = self.e.describe();
            let ann = crate::epochs::EpochAnnouncement::verify(
                &desc.epoch_announcement,
                &sealbridge_seal::keys::Ed25519PublicKey(desc.key_bundle.ed25519),
            )
            .unwrap();
            let mut nonce = [0u8; 16];
            self.rng.fill_bytes(&mut nonce);
            let header = EnvelopeHeader::new(
                desc.key_bundle.instance_id(),
                ann.epoch,
                ProgramId(desc.program_id.0),
                Nonce(nonce),
                self.now + 600,
                TraceId([0; 16]),
            );
            let ob = Obligation {
                to: Address::repeat_byte(((from + 1) % 3 + 1) as u8),
                token: TOKEN,
                amount: 5,
            };
            let env = envelope::seal(
                &header,
                &ann.public_key,
                &self.users[from],
                &ob.encode(),
                &mut self.rng,
            )
            .unwrap();
            let now = self.now;
            match self.call(Request::Submit { envelope: env, now }) {
                Response::Submitted(o) => assert_eq!(o.rejected, None),
                r => panic!("{r:?}"),
            }
        }

        fn at(&mut self, r: impl Fn(u64) -> Request, now: u64) -> Response {
            self.now = now;
            self.call(r(now))
        }

        fn steps(&self, record: &JournalRecord) -> Vec<Step> {
            let key = SealingKey::derive(&RootSecret::from_bytes(ROOT), SEAL_PURPOSE_JOURNAL);
            let plain = key
                .open(
                    &persist::journal_aad(self.e.instance.as_bytes(), record.index),
                    &record.blob,
                )
                .unwrap();
            persist::from_cbor(&plain).unwrap()
        }

        fn restore(&self, next: u64, plain: &[u8]) -> Result<Enclave<Netting>, Error> {
            Enclave::from_plain(
                self.policy.clone(),
                Netting::new(&self.policy.netting),
                TARGET,
                boxed(2),
                &RootSecret::from_bytes(ROOT),
                next,
                plain,
            )
        }
    }

    /// Inputs in epoch 1, cut, rotation to 2 (grace passes), then to 3 (a jump), settled.
    fn run() -> Live {
        let mut l = Live::new();
        l.submit(0);
        l.submit(1);
        l.at(|now| Request::CutBatch { now }, T0 + 10);
        l.at(|now| Request::Tick { now }, T0 + 1_000);
        l.submit(2);
        l.at(|now| Request::Tick { now }, T0 + 1_100);
        l.at(|now| Request::CutBatch { now }, T0 + 1_200);
        l.call(Request::Settled { sequence: 2 });
        l.at(|now| Request::Tick { now }, T0 + 3_500);
        l
    }

    #[test]
    fn no_journal_record_holds_an_epoch_secret() {
        let l = run();
        assert!(l.records.len() > 8);
        // A secret would be in a record raw (a byte string) or as serde writes a `[u8; 32]`
        // (a CBOR array): look for both.
        let forms = |s: &[u8; 32]| [s.to_vec(), persist::to_cbor(s).unwrap().to_vec()];
        let holds = |plain: &[u8], s: &[u8; 32]| {
            forms(s)
                .iter()
                .any(|f| plain.windows(f.len()).any(|w| w == f.as_slice()))
        };
        // Control: the probe finds a secret where one is (the snapshot holds the head).
        let (_, snap) = l.e.snapshot_plain().unwrap();
        assert!(
            holds(&snap, l.e.epochs.head().expose()),
            "control: probe works"
        );
        let mut kinds = std::collections::BTreeSet::new();
        for rec in &l.records {
            let key = SealingKey::derive(&RootSecret::from_bytes(ROOT), SEAL_PURPOSE_JOURNAL);
            let plain = key
                .open(
                    &persist::journal_aad(l.e.instance.as_bytes(), rec.index),
                    &rec.blob,
                )
                .unwrap();
            for s in &l.secrets {
                assert!(!holds(&plain, s), "record {} holds a secret", rec.index);
            }
            for step in l.steps(rec) {
                kinds.insert(match step {
                    Step::Rotate { .. } => "rotate",
                    Step::Retire { .. } => "retire",
                    Step::Erase { .. } => "erase",
                    Step::Settled { .. } => "settled",
                    Step::Input { .. } => "input",
                    _ => "other",
                });
            }
        }
        // Every kind of step the ratchet and erasure make was looked at.
        for k in ["rotate", "retire", "erase", "settled", "input"] {
            assert!(kinds.contains(k), "{k} missing from {kinds:?}");
        }
    }

    #[test]
    fn an_input_whose_key_was_erased_is_refused_on_replay_clearly() {
        let mut l = Live::new();
        let (next0, before) = l.e.snapshot_plain().unwrap();
        l.submit(0);
        let input_record = l.records.last().unwrap().clone();
        l.at(|now| Request::CutBatch { now }, T0 + 10);
        l.at(|now| Request::Tick { now }, T0 + 1_000);
        // Settled while epoch 1's KEM key is in grace: its input key stays (the snapshot
        // would hold the KEM secret anyway); the retirement erases it.
        match l.call(Request::Settled { sequence: 1 }) {
            Response::Settled { through, erased } => assert_eq!((through, erased), (1, vec![])),
            r => panic!("{r:?}"),
        }
        assert_eq!(l.e.input_key_epochs(), vec![1, 2]);
        l.at(|now| Request::Tick { now }, T0 + 1_100);
        assert_eq!((l.e.input_key_epochs(), l.e.erased_epochs()), (vec![2], 1));
        let (next1, after) = l.e.snapshot_plain().unwrap();
        // Control: from the snapshot before erasure the journal replays.
        let mut old = l.restore(next0, &before).unwrap();
        for rec in &l.records[next0 as usize..] {
            old.replay(rec).unwrap();
        }
        assert_eq!(old.checkpoint().unwrap(), l.e.checkpoint().unwrap());
        // The epoch-1 input, re-journaled after the erasure (a record sealed with the root at
        // the next position): its key is gone, and replay says so.
        let input = l
            .steps(&input_record)
            .into_iter()
            .find(|s| matches!(s, Step::Input { .. }))
            .unwrap();
        let plain = persist::to_cbor(&vec![input]).unwrap();
        let key = SealingKey::derive(&RootSecret::from_bytes(ROOT), SEAL_PURPOSE_JOURNAL);
        let forged = JournalRecord {
            index: next1,
            blob: key.seal(
                &persist::journal_aad(l.e.instance.as_bytes(), next1),
                &plain,
                &mut l.rng,
            ),
        };
        let mut new = l.restore(next1, &after).unwrap();
        let before_cp = new.checkpoint().unwrap();
        assert_eq!(
            new.replay(&forged).unwrap_err(),
            Error::Replay("journal record holds an input sealed under an erased epoch key")
        );
        assert_eq!(new.checkpoint().unwrap(), before_cp);
        assert_eq!(new.next_record(), Some(next1), "nothing applied");
    }

    #[test]
    fn a_sealed_input_moved_to_another_record_does_not_open() {
        let mut l = Live::new();
        let (next0, before) = l.e.snapshot_plain().unwrap();
        l.submit(0);
        let input = l
            .steps(l.records.last().unwrap())
            .into_iter()
            .find(|s| matches!(s, Step::Input { .. }))
            .unwrap();
        // The same sealed input in a record at another index (re-sealed with the root).
        let key = SealingKey::derive(&RootSecret::from_bytes(ROOT), SEAL_PURPOSE_JOURNAL);
        let mut e = l.restore(next0, &before).unwrap();
        for rec in &l.records[next0 as usize..l.records.len() - 1] {
            e.replay(rec).unwrap();
        }
        let index = l.records.len() as u64 - 1;
        let plain = persist::to_cbor(&vec![Step::Advance(T0), input]).unwrap();
        // At its own index it opens; one further on it does not.
        let at = |i: u64, rng: &mut ChaCha20Rng| JournalRecord {
            index: i,
            blob: key.seal(
                &persist::journal_aad(l.e.instance.as_bytes(), i),
                &plain,
                rng,
            ),
        };
        let mut moved = l.restore(next0, &before).unwrap();
        for rec in &l.records[next0 as usize..l.records.len() - 1] {
            moved.replay(rec).unwrap();
        }
        moved.journal.as_mut().unwrap().next = index + 1;
        assert_eq!(
            moved.replay(&at(index + 1, &mut l.rng)).unwrap_err(),
            Error::Replay("a sealed input in the journal record does not open")
        );
        e.replay(&at(index, &mut l.rng)).unwrap();
    }

    #[test]
    fn the_open_batch_a_snapshot_carries_is_what_restores_it_and_an_inconsistent_one_is_refused() {
        let mut l = Live::new();
        l.submit(0);
        l.submit(1);
        l.call(Request::Chain(ChainEvent::WithdrawalRequest {
            request_id: 1,
            account: Address::repeat_byte(3),
            token: TOKEN,
            amount: 5,
        }));
        let (next, plain) = l.e.snapshot_plain().unwrap();
        let cut = |e: &mut Enclave<Netting>| match e.handle(Request::CutBatch { now: T0 + 5 }) {
            Response::Batch(b) => b,
            r => panic!("{r:?}"),
        };
        let snap: persist::Snapshot = persist::from_cbor(&plain).unwrap();
        assert_eq!(snap.batch.receipts.len(), 2);
        let want = cut(&mut l.e);
        assert!(want.as_ref().is_some_and(|b| b.statement.inputCount == 2));
        let with = |change: &dyn Fn(&mut persist::Snapshot)| {
            let mut s: persist::Snapshot = persist::from_cbor(&plain).unwrap();
            change(&mut s);
            l.restore(next, &persist::to_cbor(&s).unwrap())
        };
        // Control: the same snapshot with the open batch emptied restores (it is consistent)
        // but closes another statement: the batch fields are what carry it.
        let mut emptied = with(&|s| {
            s.batch = persist::OpenBatch {
                program_pending: Netting::new(&l.policy.netting).encode_pending(),
                receipts: vec![],
                sequences: vec![],
                senders: vec![],
                since: None,
                carried_request_id: s.last_request_id,
            };
        })
        .unwrap();
        let mut genuine = l.restore(next, &plain).unwrap();
        assert_eq!(cut(&mut genuine), want);
        assert_ne!(cut(&mut emptied), want);
        // An open batch the enclave could not have held: refused, clearly.
        let inconsistent = Error::Replay("snapshot open batch is inconsistent");
        type Change = dyn Fn(&mut persist::Snapshot);
        let cases: [(&str, &Change); 7] = [
            ("a receipt dropped", &|s| {
                s.batch.receipts.pop();
                s.batch.sequences.pop();
            }),
            ("sequences and receipts differ", &|s| {
                s.batch.sequences.pop();
            }),
            ("a sequence beyond the log", &|s| {
                if let Some(q) = s.batch.sequences.last_mut() {
                    *q = 1_000_000;
                }
            }),
            ("sequences out of order", &|s| s.batch.sequences.reverse()),
            ("no senders", &|s| s.batch.senders.clear()),
            ("no start time", &|s| s.batch.since = None),
            ("a marker ahead of the decisions", &|s| {
                s.batch.carried_request_id = s.last_request_id + 1;
            }),
        ];
        for (what, change) in cases {
            assert_eq!(with(change).err(), Some(inconsistent.clone()), "{what}");
        }
        assert_eq!(
            with(&|s| s.batch.program_pending = vec![9]).err(),
            Some(Error::Replay("snapshot pending batch of the program"))
        );
    }

    #[test]
    fn a_snapshot_from_before_forward_secrecy_is_refused_clearly() {
        let l = Live::new();
        #[derive(serde::Serialize)]
        struct Old {
            version: u8,
        }
        let err = l
            .restore(0, &persist::to_cbor(&Old { version: 2 }).unwrap())
            .unwrap_err();
        assert!(
            err.to_string().contains("predates forward secrecy at rest"),
            "{err}"
        );
        let (next, plain) = l.e.snapshot_plain().unwrap();
        assert!(
            l.restore(next, &plain).is_ok(),
            "control: version 3 restores"
        );
    }
}
