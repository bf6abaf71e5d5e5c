//! A small deployment run end to end (real enclave, real contracts on the embedded EVM, threshold
//! registration through the verifier library), whose public data the tests then audit and tamper
//! with. The enclave's randomness is seeded so the test can recreate its instance keys and play
//! an equivocating enclave (re-signing checkpoints and statements): what the on-chain anchors and
//! the auditor exist to catch.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use alloy_primitives::{Address, B256, Bytes, U256};
use alloy_sol_types::SolValue;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sealbridge_attest::{Collateral, Evidence, Policy};
use sealbridge_audit::{
    Attestations, AuditInput, ChainRecord, Contracts, PublishedEvidence, RecordedChain, Report,
    TimedChain, audit, published::INSECURE_DEV_POLICY_JSON,
};
use sealbridge_chain::{
    Chain, EmbeddedChain, Sealbridge, SettleOutcome,
    contracts::DeployParams,
    embedded::key_address,
    proto_compat::{effects_from_proto, exits_from_proto},
};
use sealbridge_enclave::{
    Enclave, EnclavePolicy, ExitReason, SettlementTarget, SignedStatement,
    boundary::{ChainEvent, Description, Request, Response},
    epochs::EpochAnnouncement,
    log_entry::{self, EntryKind},
};
use sealbridge_log::{TileStore, leaf_hash, merkle_root};
use sealbridge_programs::netting::{Netting, NettingConfig, Obligation, Participant};
use sealbridge_proto::{
    EnvelopeHeader, Nonce, ProgramId, SenderId, TraceId,
    eip712::{Exit, Statement, effects_hash, settlement_domain},
};
use sealbridge_seal::keys::{Ed25519PublicKey, Ed25519SigningKey};

pub type Sb = Sealbridge<TimedChain<EmbeddedChain>>;

pub struct Scenario {
    pub sb: Sb,
    pub admin: Address,
    pub enclave: Enclave<Netting>,
    pub description: Description,
    pub entries: Vec<Vec<u8>>,
    pub statements: Vec<SignedStatement>,
    pub attestations: Attestations,
    pub ed: Ed25519SigningKey,
    pub secp: k256::ecdsa::SigningKey,
    pub contracts: Contracts,
    pub origin: String,
    pub tmp: tempfile::TempDir,
    /// The enclave's policy (a successor runs the same).
    pub policy: EnclavePolicy,
    /// The three verifiers (threshold 2).
    pub verifiers: Vec<k256::ecdsa::SigningKey>,
}

/// A second enclave registered on chain for a handover (issue 12): its keys recreated from its
/// seed, its registered result and the verifiers' signatures.
pub struct Successor {
    pub enclave: Enclave<Netting>,
    pub description: Description,
    pub ed: Ed25519SigningKey,
    pub secp: k256::ecdsa::SigningKey,
    pub result: sealbridge_proto::eip712::AttestationResult,
    pub signatures: Vec<Vec<u8>>,
}

/// The instance keys an enclave booted from `seed` generated: `InstanceKeys::generate` draws
/// Ed25519 then secp256k1; boot may draw other 32-byte secrets first, so find where they start.
fn recreate_keys(
    seed: u64,
    description: &Description,
) -> (Ed25519SigningKey, k256::ecdsa::SigningKey) {
    (0..8)
        .find_map(|skip| {
            let mut krng = ChaCha20Rng::seed_from_u64(seed);
            for _ in 0..skip {
                rand_core::RngCore::fill_bytes(&mut krng, &mut [0u8; 32]);
            }
            let ed = Ed25519SigningKey::generate(&mut krng);
            let secp = k256::ecdsa::SigningKey::random(&mut krng);
            (description.key_bundle.ed25519 == *ed.public().as_bytes()
                && description.key_bundle.address == key_address(&secp))
            .then_some((ed, secp))
        })
        .expect("instance keys recreated from the enclave's seed")
}

/// Register `enclave` (described by `description`) through the first two `verifiers`, with the
/// latest block as challenge: the result, the signatures and the evidence.
fn register(
    sb: &mut Sb,
    admin: Address,
    verifiers: &[k256::ecdsa::SigningKey],
    enclave: &mut Enclave<Netting>,
    description: &Description,
) -> (
    sealbridge_proto::eip712::AttestationResult,
    Vec<Vec<u8>>,
    Evidence,
) {
    let d = sb.deployment;
    let now = sb.chain().block_timestamp().unwrap();
    let challenge_block = sb.chain().block_number().unwrap();
    let challenge = sb.chain().block_hash(challenge_block).unwrap().unwrap();
    let evidence = match enclave.handle(Request::Evidence {
        challenge: challenge.to_vec(),
        now,
    }) {
        Response::Evidence { evidence, .. } => Evidence::Simulated(evidence),
        other => panic!("{other:?}"),
    };
    let bundle = description.key_bundle;
    let binding = sealbridge_attest::verifier::KeyBinding {
        key_bundle: bundle.to_bytes(),
        key_bundle_hash: bundle.hash(),
        enclave: bundle.address,
        ed25519_key: B256::from(bundle.ed25519),
    };
    let signed: Vec<_> = verifiers
        .iter()
        .take(2)
        .map(|key| {
            sealbridge_attest::verifier::VerifierRole::new(key.clone(), Policy::insecure_dev())
                .attest(
                    &evidence,
                    &Collateral::None,
                    &binding,
                    sealbridge_attest::verifier::Challenge {
                        block: challenge_block,
                        hash: challenge,
                    },
                    now,
                    d.chain_id,
                    d.registry,
                )
                .unwrap()
        })
        .collect();
    let (result, sigs) = sealbridge_attest::verifier::collect(&signed).unwrap();
    let chain_result: sealbridge_chain::AttestationResult = (&result).into();
    sb.register(
        admin,
        &chain_result,
        sigs.iter().cloned().map(Bytes::from).collect(),
    )
    .unwrap();
    (result, sigs, evidence)
}

/// Withdrawal requests the scenario makes: before submission `i`, participant `who` asks for
/// `amount` (each granted in full: well within escrow).
pub const EXIT_REQUESTS: &[(u32, usize, u64)] = &[(5, 0, 700), (6, 1, 300), (14, 0, 50)];

impl Scenario {
    /// `inputs` good obligations and `bad` garbage envelopes (rejected) interleaved, in batches
    /// of `batch_size`, and the [`EXIT_REQUESTS`] made along the way (those before the last
    /// submission).
    pub fn build(seed: u64, inputs: u32, bad: u32, batch_size: u32) -> Self {
        Self::build_with(seed, inputs, bad, batch_size, true)
    }

    /// [`Self::build`]; with `settle_cut` false the statement of the final `CutBatch` (the
    /// inputs left over after the full batches) is signed and logged but not settled.
    pub fn build_with(seed: u64, inputs: u32, bad: u32, batch_size: u32, settle_cut: bool) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 0x5eed);
        let chain = TimedChain::new(EmbeddedChain::new()).unwrap();
        let admin = chain.dev_address(0);
        let people: Vec<(Ed25519SigningKey, Address)> = (0..3)
            .map(|_| {
                let key = Ed25519SigningKey::generate(&mut rng);
                (key, Address::from(rng.r#gen::<[u8; 20]>()))
            })
            .collect();
        // The base policy hash and the measurement follow once the enclave runs (the policy
        // names the token this deploys).
        let mut accounts: Vec<Address> = people.iter().map(|p| p.1).collect();
        accounts.sort();
        let params = DeployParams::dev(admin, B256::ZERO, accounts, Vec::new());
        let mut sb = Sealbridge::deploy(chain, &params).unwrap();
        let d = sb.deployment;
        let policy = EnclavePolicy::new(
            NettingConfig {
                participants: people
                    .iter()
                    .map(|(k, a)| Participant {
                        sender: SenderId::new(*k.public().as_bytes()),
                        account: *a,
                    })
                    .collect(),
                tokens: vec![d.token],
            },
            batch_size,
        );
        let now = sb.chain().block_timestamp().unwrap();
        let mut enclave = Enclave::boot(
            policy.clone(),
            Netting::new(&policy.netting),
            SettlementTarget {
                chain_id: d.chain_id,
                settlement: d.settlement,
            },
            Box::new(ChaCha20Rng::seed_from_u64(seed)),
            now,
        )
        .unwrap();
        let description = match enclave.handle(Request::Describe) {
            Response::Description(d) => *d,
            other => panic!("{other:?}"),
        };
        // Recreate the instance keys from the same seed.
        let (ed, secp) = recreate_keys(seed, &description);
        // The contract composes the base hash with the account and token lists it holds: it
        // must arrive at the hash the enclave signs statements with.
        sb.set_policy_hash(admin, policy.base_hash()).unwrap();
        assert_eq!(sb.policy_hash().unwrap(), description.policy_hash);
        sb.allow_measurement_here(admin, description.measurement)
            .unwrap();

        // Registration: evidence → 2 of 3 verifiers → registry; the enclave logs the result.
        let verifiers: Vec<k256::ecdsa::SigningKey> = (0..3)
            .map(|_| k256::ecdsa::SigningKey::random(&mut rng))
            .collect();
        for v in &verifiers {
            sb.add_verifier(admin, key_address(v)).unwrap();
        }
        sb.set_threshold(admin, 2).unwrap();
        sb.allow_simulated(admin, true).unwrap();
        let now = sb.chain().block_timestamp().unwrap();
        sb.allow_measurement(admin, description.measurement, now, now + 365 * 86_400)
            .unwrap();
        let (result, sigs, evidence) =
            register(&mut sb, admin, &verifiers, &mut enclave, &description);
        let bundle = description.key_bundle;
        assert!(matches!(
            enclave.handle(Request::LogAttestation {
                result: result.abi_encode(),
                signatures: sigs.clone(),
            }),
            Response::Ack
        ));

        // Escrow.
        for (_, account) in &people {
            sb.chain_mut()
                .set_balance(*account, U256::from(10u64).pow(U256::from(18u64)));
            sb.chain_mut().impersonate(*account);
            sb.mint(admin, *account, U256::from(1_000_000u64)).unwrap();
            sb.deposit(*account, d.token, U256::from(1_000_000u64))
                .unwrap();
            assert!(matches!(
                enclave.handle(Request::Chain(ChainEvent::Deposit {
                    account: *account,
                    token: d.token,
                    amount: 1_000_000,
                })),
                Response::Ack
            ));
        }

        // Submissions: a garbage envelope every few good ones.
        let ann = EpochAnnouncement::verify(
            &description.epoch_announcement,
            &Ed25519PublicKey::from_bytes(bundle.ed25519),
        )
        .unwrap();
        let mut statements = Vec::new();
        let total = inputs + bad;
        let mut bad_left = bad;
        for i in 0..total {
            for &(_, who, amount) in EXIT_REQUESTS.iter().filter(|r| r.0 == i) {
                let (account, token) = (people[who].1, d.token);
                let (request_id, _) = sb
                    .request_withdrawal(account, token, U256::from(amount))
                    .unwrap();
                match enclave.handle(Request::Chain(ChainEvent::WithdrawalRequest {
                    request_id,
                    account,
                    token,
                    amount: u128::from(amount),
                })) {
                    Response::ExitDecided {
                        granted,
                        reason: ExitReason::Full,
                        batch: None,
                        ..
                    } => assert_eq!(granted, u128::from(amount)),
                    other => panic!("{other:?}"),
                }
            }
            let now = sb.chain().block_timestamp().unwrap();
            // A bad envelope is an obligation no escrow covers: rejected (`program-rejected`)
            // and logged. (Junk no participant signed is an unlogged rejection since issue 11:
            // it would leave no log entry to audit.)
            let overdraft = bad_left > 0 && i % 3 == 1;
            bad_left -= u32::from(overdraft);
            let envelope = {
                let from = &people[i as usize % 3];
                let to = &people[(i as usize + 1) % 3];
                let header = EnvelopeHeader::new(
                    ann.instance,
                    ann.epoch,
                    ProgramId::new(description.program_id.0),
                    Nonce::new(rng.r#gen()),
                    now + 600,
                    TraceId::new(rng.r#gen()),
                );
                let ob = Obligation {
                    to: to.1,
                    token: d.token,
                    amount: if overdraft {
                        u128::MAX / 4
                    } else {
                        rng.gen_range(1..=500)
                    },
                };
                sealbridge_seal::envelope::seal(
                    &header,
                    &ann.public_key,
                    &from.0,
                    &ob.encode(),
                    &mut rng,
                )
                .unwrap()
            };
            let outcome = match enclave.handle(Request::Submit { envelope, now }) {
                Response::Submitted(o) => *o,
                other => panic!("{other:?}"),
            };
            for batch in outcome.batches {
                settle(&mut sb, admin, &batch);
                statements.push(batch);
            }
        }
        let now = sb.chain().block_timestamp().unwrap();
        if let Response::Batch(Some(batch)) = enclave.handle(Request::CutBatch { now }) {
            if settle_cut {
                settle(&mut sb, admin, &batch);
            }
            statements.push(*batch);
        }

        let mut attestations = Attestations::default();
        let published = PublishedEvidence::new(&evidence, &Collateral::None).unwrap();
        attestations.evidence.insert(published.hash(), published);
        attestations
            .policies
            .insert(0, INSECURE_DEV_POLICY_JSON)
            .unwrap();
        let mut me = Self {
            contracts: Contracts {
                chain_id: d.chain_id,
                registry: d.registry,
                settlement: d.settlement,
            },
            origin: sealbridge_enclave::checkpoint::log_origin(d.chain_id, d.settlement),
            sb,
            admin,
            enclave,
            description,
            entries: Vec::new(),
            statements,
            attestations,
            ed,
            secp,
            tmp: tempfile::tempdir().unwrap(),
            policy,
            verifiers,
        };
        me.drain();
        me
    }

    /// Boot a second enclave of the same policy from `seed`, let this deployment allow its
    /// measurement, register it on chain through the verifiers and publish its evidence.
    pub fn register_successor(&mut self, seed: u64) -> Successor {
        let now = self.sb.chain().block_timestamp().unwrap();
        let mut enclave = Enclave::boot(
            self.policy.clone(),
            Netting::new(&self.policy.netting),
            SettlementTarget {
                chain_id: self.contracts.chain_id,
                settlement: self.contracts.settlement,
            },
            Box::new(ChaCha20Rng::seed_from_u64(seed)),
            now,
        )
        .unwrap();
        let description = match enclave.handle(Request::Describe) {
            Response::Description(d) => *d,
            other => panic!("{other:?}"),
        };
        let (ed, secp) = recreate_keys(seed, &description);
        let admin = self.admin;
        self.sb
            .allow_measurement_here(admin, description.measurement)
            .unwrap();
        let verifiers = self.verifiers.clone();
        let (result, signatures, evidence) =
            register(&mut self.sb, admin, &verifiers, &mut enclave, &description);
        let published = PublishedEvidence::new(&evidence, &Collateral::None).unwrap();
        self.attestations
            .evidence
            .insert(published.hash(), published);
        Successor {
            enclave,
            description,
            ed,
            secp,
            result,
            signatures,
        }
    }

    /// Move the enclave's new log entries into `entries`.
    pub fn drain(&mut self) {
        match self.enclave.handle(Request::LogEntries) {
            Response::LogEntries {
                first_index,
                entries,
            } => {
                assert_eq!(first_index as usize, self.entries.len());
                self.entries.extend(entries);
            }
            other => panic!("{other:?}"),
        }
    }

    pub fn record(&self) -> ChainRecord {
        ChainRecord::capture(self.sb.chain(), self.contracts).unwrap()
    }

    /// A checkpoint over `entries`, signed with the enclave's key.
    pub fn sign_checkpoint(&self, entries: &[Vec<u8>]) -> String {
        let leaves: Vec<_> = entries.iter().map(|e| leaf_hash(e)).collect();
        sealbridge_enclave::checkpoint::sign(
            &self.ed,
            &self.origin,
            entries.len() as u64,
            merkle_root(&leaves),
        )
        .unwrap()
    }

    /// Write tiles of `entries`, `checkpoint` (or one signed over `entries`), `chain.json` and the
    /// attestation material into a fresh directory.
    pub fn write(
        &self,
        name: &str,
        entries: &[Vec<u8>],
        checkpoint: Option<&str>,
        record: &ChainRecord,
    ) -> PathBuf {
        let dir = self.tmp.path().join(name);
        let mut store = TileStore::open(dir.join("log")).unwrap();
        store.append_batch(entries).unwrap();
        let note = checkpoint
            .map(str::to_owned)
            .unwrap_or_else(|| self.sign_checkpoint(entries));
        store.write_checkpoint(&note).unwrap();
        record.write(&dir.join("chain.json")).unwrap();
        self.attestations.write(&dir).unwrap();
        dir
    }

    /// The honest export.
    pub fn honest(&self, name: &str) -> PathBuf {
        self.write(name, &self.entries, None, &self.record())
    }

    /// Sign a statement with the enclave's secp256k1 key.
    pub fn sign_statement(&self, s: &Statement) -> [u8; 65] {
        let digest = s.digest(&settlement_domain(
            self.contracts.chain_id,
            self.contracts.settlement,
        ));
        let sig = sealbridge_chain::eip712::sign_digest(&self.secp, digest);
        sig.as_ref().try_into().unwrap()
    }

    pub fn statement_entry(s: &Statement, sig: &[u8; 65]) -> Vec<u8> {
        log_entry::encode(
            EntryKind::Statement,
            &[s.abi_encode().as_slice(), sig].concat(),
        )
    }

    /// A statement renewal entry (kind 7): same body as a statement entry.
    pub fn renewal_entry(s: &Statement, sig: &[u8]) -> Vec<u8> {
        log_entry::encode(
            EntryKind::StatementRenewal,
            &[s.abi_encode().as_slice(), sig].concat(),
        )
    }

    /// Have the enclave renew `statement` (signed `signature`) at host time `now`
    /// (`Request::RenewStatement`) and move the renewal entry into `entries`: the renewed
    /// statement and its signature.
    pub fn renew(
        &mut self,
        statement: &Statement,
        signature: &[u8],
        now: u64,
    ) -> (Statement, Vec<u8>) {
        // An honest host walks the enclave's clock to `now` in steps the policy allows.
        while self.enclave.enclave_time() < now {
            let at = now.min(self.enclave.enclave_time() + 3_000);
            match self.enclave.handle(Request::Tick { now: at }) {
                Response::Ticked { .. } => {}
                other => panic!("{other:?}"),
            }
        }
        let (abi, sig) = match self.enclave.handle(Request::RenewStatement {
            statement: statement.abi_encode(),
            signature: signature.to_vec(),
            now,
        }) {
            Response::Renewed {
                statement,
                signature,
                ..
            } => (statement, signature),
            other => panic!("{other:?}"),
        };
        self.drain();
        let renewed = Statement::abi_decode(&abi).unwrap();
        assert_eq!(
            self.entries.last(),
            Some(&Self::renewal_entry(&renewed, &sig)),
            "the enclave logged the renewal"
        );
        (renewed, sig)
    }

    /// Settle `statement` (signed `signature`) on chain in a block at time `at`, with the effects
    /// of `batch` (the batch it renews: renewals keep the effects hash).
    pub fn settle_at(
        &mut self,
        at: u64,
        statement: &Statement,
        signature: &[u8],
        batch: &SignedStatement,
    ) -> Result<SettleOutcome, sealbridge_chain::ContractError> {
        self.sb.chain_mut().set_next_timestamp(at).unwrap();
        let admin = self.admin;
        self.sb.settle(
            admin,
            &statement.into(),
            &effects_from_proto(&batch.effects),
            &exits_from_proto(&batch.exits_for_settle()),
            Bytes::from(signature.to_vec()),
        )
    }

    /// Settle a statement the test signed (with the enclave's key) carrying `exits` and no
    /// effects.
    pub fn settle_exits(
        &mut self,
        statement: &Statement,
        signature: &[u8; 65],
        exits: &[Exit],
    ) -> SettleOutcome {
        let admin = self.admin;
        self.sb
            .settle(
                admin,
                &statement.into(),
                &[],
                &exits_from_proto(exits),
                Bytes::from(signature.to_vec()),
            )
            .unwrap()
    }
}

fn settle(sb: &mut Sb, admin: Address, batch: &SignedStatement) {
    let outcome = sb
        .settle(
            admin,
            &(&batch.statement).into(),
            &effects_from_proto(&batch.effects),
            &exits_from_proto(&batch.exits_for_settle()),
            Bytes::from(batch.signature.clone()),
        )
        .unwrap();
    assert!(matches!(outcome, SettleOutcome::Applied(_)));
}

/// Audit an exported directory through a recorded chain.
pub fn audit_dir(dir: &Path) -> Report {
    let chain = RecordedChain::open(&dir.join("chain.json")).unwrap();
    let attestations = Attestations::read(dir).unwrap();
    let contracts = chain.record().contracts();
    audit(&AuditInput {
        chain: &chain,
        contracts,
        log_dir: &dir.join("log"),
        attestations: &attestations,
        published_receipts: None,
        witnesses: None,
    })
    .unwrap()
}

pub fn empty_effects_hash() -> B256 {
    effects_hash(&[], &[])
}
