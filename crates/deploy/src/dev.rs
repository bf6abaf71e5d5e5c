//! Development setup (`sealbridge node --dev`): deterministic participants, contract deployment,
//! registration through development verifiers in process ([`Appraisers::InsecureInProcess`]),
//! escrow funding (embedded chain).
//!
//! INSECURE by design: participants' keys derive from public labels so that `sealbridge load`
//! can sign for them, verifiers' keys come from a plain seed file in the data dir, and the
//! simulated TEE is allowed on chain. Never use `--dev` with anything of value; a real
//! deployment is `sealbridge deploy` + `sealbridge verifier serve` + `sealbridge node
//! --deployment` ([`crate`], [`sealbridge_verifier::service`]).

use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use sealbridge_chain::{
    Chain, ChainError, DeployParams, EmbeddedChain, RegistryParams, Sealbridge,
    bindings::{EnclaveRegistry, Settlement},
    embedded::key_address,
};
use sealbridge_enclave::boundary::{Description, Request, Response};
use sealbridge_programs::netting::Participant;
use sealbridge_seal::keys::Ed25519SigningKey;

use crate::DeployError;
use sealbridge_verifier::registration::{self, Appraisers};

/// A development participant: envelope signing key and escrow account.
#[derive(Debug)]
pub struct DevParticipant {
    /// Ed25519 key that signs its envelopes.
    pub key: Ed25519SigningKey,
    /// Escrow account.
    pub account: Address,
}

impl DevParticipant {
    /// Participant `i` (keys from the public label `sealbridge/dev/participant/<i>`: INSECURE).
    pub fn new(i: u32) -> Self {
        let seed = keccak256(format!("sealbridge/dev/participant/{i}/ed25519"));
        let account = Address::from_slice(
            &keccak256(format!("sealbridge/dev/participant/{i}/account"))[12..],
        );
        Self {
            key: Ed25519SigningKey::from_seed(seed.0),
            account,
        }
    }

    /// As the netting program sees it.
    pub fn netting(&self) -> Participant {
        Participant {
            sender: self.key.public().sender_id(),
            account: self.account,
        }
    }
}

/// The first `n` development participants.
pub fn participants(n: u32) -> Vec<DevParticipant> {
    (0..n).map(DevParticipant::new).collect()
}

/// Chains on which development setup can act for arbitrary accounts.
pub trait DevChain: Chain {
    /// Give `account` gas money and let this chain send from it.
    fn fund_and_unlock(&mut self, account: Address) -> Result<(), ChainError>;
    /// An account this chain sends from with a balance (the deployer / admin / relayer).
    fn admin(&self) -> Result<Address, ChainError>;
    /// Whether `sealbridge node --dev` funds the development participants' escrow at setup.
    /// Yes on the embedded chain (nothing else can reach it); not on a JSON-RPC chain, where
    /// `sealbridge load` funds them from the chain's prefunded accounts.
    fn funds_participants_at_setup(&self) -> bool {
        true
    }
}

impl DevChain for EmbeddedChain {
    fn fund_and_unlock(&mut self, account: Address) -> Result<(), ChainError> {
        self.set_balance(account, U256::from(10u64).pow(U256::from(18u64)));
        self.impersonate(account);
        Ok(())
    }

    fn admin(&self) -> Result<Address, ChainError> {
        Ok(self.dev_address(0))
    }
}

/// Escrow deposited for each development participant.
pub const DEV_DEPOSIT: u128 = 1_000_000_000;

/// Mint test tokens to each participant and deposit them into escrow.
pub fn fund<C: DevChain>(
    sb: &mut Sealbridge<C>,
    admin: Address,
    participants: &[DevParticipant],
) -> Result<(), DeployError> {
    let token = sb.deployment.token;
    for p in participants {
        sb.chain_mut().fund_and_unlock(p.account)?;
        sb.mint(admin, p.account, U256::from(DEV_DEPOSIT))?;
        sb.deposit(p.account, token, U256::from(DEV_DEPOSIT))?;
    }
    Ok(())
}

/// File in the data dir holding the seed of the development verifiers' keys (INSECURE: a plain
/// file). Keeping the keys stable lets the same verifier set re-sign when the registration is
/// renewed, also after a restart.
pub const DEV_VERIFIER_SEED_FILE: &str = "INSECURE-dev-verifier-seed";

pub use sealbridge_verifier::registration::{RENEW_MARGIN, SignedRegistration};

/// Development verifiers: [`DEV_VERIFIERS`] keys, [`DEV_THRESHOLD`] of which sign a registration.
pub const DEV_VERIFIERS: u8 = 3;
/// Signatures a development registration needs.
pub const DEV_THRESHOLD: u32 = 2;
/// How long the development deployment allows the enclave's measurement: ten years.
pub const DEV_MEASUREMENT_WINDOW: u64 = 10 * 365 * 86_400;

/// The development verifiers' keys ([`DEV_VERIFIERS`] of them), from [`DEV_VERIFIER_SEED_FILE`]
/// (created on first use).
pub fn dev_verifiers(
    data_dir: &std::path::Path,
) -> Result<Vec<k256::ecdsa::SigningKey>, DeployError> {
    let path = data_dir.join(DEV_VERIFIER_SEED_FILE);
    let seed: [u8; 32] = match std::fs::read(&path) {
        Ok(bytes) => bytes.try_into().map_err(|_| {
            DeployError::Config(format!("{} must hold exactly 32 bytes", path.display()))
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut seed);
            std::fs::write(&path, seed).map_err(|source| DeployError::Io {
                path: path.display().to_string(),
                source,
            })?;
            seed
        }
        Err(source) => {
            return Err(DeployError::Io {
                path: path.display().to_string(),
                source,
            });
        }
    };
    (0..DEV_VERIFIERS)
        .map(|i| {
            k256::ecdsa::SigningKey::from_slice(
                keccak256([seed.as_slice(), &[i]].concat()).as_slice(),
            )
            .map_err(|_| DeployError::Config("development verifier seed gives no key".into()))
        })
        .collect()
}

/// What a development deployment commits to (INSECURE): `admin` (the deployer's account)
/// governs and guards both contracts with no delays; the participants' accounts; the test
/// token; the simulated netting measurement allowed on `Settlement` and, for ten years from
/// `now`, in the registry, which accepts the simulated TEE and the development verifiers
/// (`verifiers`, [`DEV_THRESHOLD`] of them per registration); escape hatch after `exit_delay`
/// seconds without a settlement. The base policy hash is set once the token's address (part of
/// the policy) is known (`Sealbridge::set_policy_hash`).
pub fn deploy_params(
    admin: Address,
    accounts: Vec<Address>,
    verifiers: &[k256::ecdsa::SigningKey],
    now: u64,
    exit_delay: u64,
) -> DeployParams {
    let measurement = crate::simulated_netting_measurement();
    let mut params = DeployParams::dev(admin, B256::ZERO, accounts, vec![measurement]);
    params.exit_delay = exit_delay.max(1);
    params.registry = RegistryParams {
        verifiers: verifiers.iter().map(key_address).collect(),
        threshold: DEV_THRESHOLD,
        allow_simulated: true,
        measurements: vec![(measurement, 0, now.saturating_add(DEV_MEASUREMENT_WINDOW))],
        ..RegistryParams::default()
    };
    params
}

/// Development governance, for a deployment whose enclave is not active: whatever of the
/// development set-up is missing on chain — the development verifiers and their threshold, the
/// simulated TEE, the enclave's measurement in the registry (for ten years) and on
/// `Settlement` — is sent by `admin`; nothing is sent for what is there already. INSECURE.
pub fn admit<C: Chain>(
    sb: &mut Sealbridge<C>,
    admin: Address,
    description: &Description,
    verifiers: &[k256::ecdsa::SigningKey],
) -> Result<(), DeployError> {
    for v in verifiers {
        if !sb.is_verifier(key_address(v))? {
            sb.add_verifier(admin, key_address(v))?;
        }
    }
    if sb.threshold()? != DEV_THRESHOLD {
        sb.set_threshold(admin, DEV_THRESHOLD)?;
    }
    let registry = sb.deployment.registry;
    if !sb.view(registry, &EnclaveRegistry::allowSimulatedCall {})? {
        sb.allow_simulated(admin, true)?;
    }
    let m = description.measurement;
    if !sb.measurement_allowed(m)? {
        let chain_now = sb.chain().block_timestamp()?;
        sb.allow_measurement(admin, m, 0, chain_now + DEV_MEASUREMENT_WINDOW)?;
    }
    let settlement = sb.deployment.settlement;
    if !sb.view(
        settlement,
        &Settlement::measurementAllowedCall { measurement: m },
    )? {
        sb.allow_measurement_here(admin, m)?;
    }
    Ok(())
}

/// Register the enclave: [`admit`], then [`registration::attest_and_register`] through the
/// development verifiers in process (the result is logged by the enclave before the
/// registration is sent). Returns the ABI-encoded result and signatures.
pub fn register<C: Chain>(
    sb: &mut Sealbridge<C>,
    admin: Address,
    description: &Description,
    verifiers: &[k256::ecdsa::SigningKey],
    call: impl FnMut(Request) -> Result<Response, registration::RegistrationError>,
    now: u64,
) -> Result<SignedRegistration, DeployError> {
    admit(sb, admin, description, verifiers)?;
    let appraisers = Appraisers::insecure_in_process(verifiers);
    Ok(registration::attest_and_register(
        sb,
        admin,
        description,
        &appraisers,
        call,
        now,
    )?)
}

/// [`registration::renew_if_due`] through the development verifiers in process.
pub fn renew_if_due<C: Chain>(
    sb: &mut Sealbridge<C>,
    admin: Address,
    description: &Description,
    verifiers: &[k256::ecdsa::SigningKey],
    call: impl FnMut(Request) -> Result<Response, registration::RegistrationError>,
    now: u64,
    margin: u64,
) -> Result<Option<SignedRegistration>, DeployError> {
    let appraisers = Appraisers::insecure_in_process(verifiers);
    Ok(registration::renew_if_due(
        sb,
        admin,
        description,
        &appraisers,
        call,
        now,
        margin,
    )?)
}

/// File in the data dir holding the embedded chain's journal.
pub const EMBEDDED_CHAIN_JOURNAL: &str = "embedded-chain.journal";
/// File in the data dir holding the embedded chain's genesis time.
pub const EMBEDDED_CHAIN_GENESIS: &str = "embedded-chain.genesis";

/// The embedded chain with block timestamps that keep pace with the host's clock (each new
/// block is stamped `max(latest + 1, now)`), so statements' validity windows, which the enclave
/// computes from host time, line up with block time as they do on a real chain.
#[derive(Debug, Clone)]
pub struct WallClockChain(pub EmbeddedChain);

impl WallClockChain {
    /// A fresh embedded chain whose genesis is now.
    pub fn new() -> Self {
        Self(EmbeddedChain::with_config(
            sealbridge_chain::EmbeddedConfig {
                genesis_timestamp: sealbridge_net::unix_now().saturating_sub(1),
                ..Default::default()
            },
        ))
    }

    /// The embedded chain kept in `data_dir` across restarts: its journal is
    /// [`EMBEDDED_CHAIN_JOURNAL`] (replayed on open, see `EmbeddedChain::open_journaled`) and its
    /// genesis time is [`EMBEDDED_CHAIN_GENESIS`], written once when the chain is created.
    pub fn open(data_dir: &std::path::Path) -> Result<Self, DeployError> {
        let storage = |p: &std::path::Path, source: std::io::Error| DeployError::Io {
            path: p.display().to_string(),
            source,
        };
        std::fs::create_dir_all(data_dir).map_err(|e| storage(data_dir, e))?;
        let journal = data_dir.join(EMBEDDED_CHAIN_JOURNAL);
        let genesis_path = data_dir.join(EMBEDDED_CHAIN_GENESIS);
        let genesis_timestamp = if journal.exists() {
            let text =
                std::fs::read_to_string(&genesis_path).map_err(|e| storage(&genesis_path, e))?;
            text.trim().parse::<u64>().map_err(|_| {
                DeployError::Config(format!(
                    "{} must hold the chain's genesis time (seconds)",
                    genesis_path.display()
                ))
            })?
        } else {
            let t = sealbridge_net::unix_now().saturating_sub(1);
            let mut f =
                std::fs::File::create(&genesis_path).map_err(|e| storage(&genesis_path, e))?;
            std::io::Write::write_all(&mut f, format!("{t}\n").as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(|e| storage(&genesis_path, e))?;
            t
        };
        let chain = EmbeddedChain::open_journaled(
            &journal,
            sealbridge_chain::EmbeddedConfig {
                genesis_timestamp,
                ..Default::default()
            },
        )?;
        if let Some(r) = chain.journal_recovery() {
            tracing::info!(
                replayed = r.replayed,
                torn_tail_bytes = r.torn_tail_bytes,
                "embedded chain reopened from its journal"
            );
        }
        Ok(Self(chain))
    }

    fn stamp(&mut self) {
        let latest = self.0.block_timestamp().unwrap_or(0);
        let now = sealbridge_net::unix_now();
        if now > latest {
            let _ = self.0.set_next_timestamp(now);
        }
    }
}

impl Default for WallClockChain {
    fn default() -> Self {
        Self::new()
    }
}

/// `Chain` for a newtype over another chain: every method forwards to field `.0`; the optional
/// `before_write` method of the wrapper runs before each deploy and send.
macro_rules! chain_via_field0 {
    ($ty:ty $(, before_write = $before_write:ident)?) => {
        impl Chain for $ty {
            fn chain_id(&self) -> Result<u64, ChainError> {
                self.0.chain_id()
            }
            fn block_number(&self) -> Result<u64, ChainError> {
                self.0.block_number()
            }
            fn block_timestamp(&self) -> Result<u64, ChainError> {
                self.0.block_timestamp()
            }
            fn block_hash(&self, number: u64) -> Result<Option<B256>, ChainError> {
                self.0.block_hash(number)
            }
            fn deploy(
                &mut self,
                from: Address,
                init_code: Bytes,
            ) -> Result<sealbridge_chain::TxReceipt, ChainError> {
                $(self.$before_write();)?
                self.0.deploy(from, init_code)
            }
            fn send(
                &mut self,
                from: Address,
                to: Address,
                calldata: Bytes,
            ) -> Result<sealbridge_chain::TxReceipt, ChainError> {
                $(self.$before_write();)?
                self.0.send(from, to, calldata)
            }
            fn send_many(
                &mut self,
                from: Address,
                txs: &[(Address, Bytes)],
            ) -> Vec<Result<sealbridge_chain::TxReceipt, ChainError>> {
                $(self.$before_write();)?
                self.0.send_many(from, txs)
            }
            fn call(
                &self,
                from: Address,
                to: Address,
                calldata: Bytes,
            ) -> Result<Bytes, ChainError> {
                self.0.call(from, to, calldata)
            }
            fn latest_block(&self) -> Result<(B256, u64), ChainError> {
                self.0.latest_block()
            }
            fn call_at(
                &self,
                from: Address,
                to: Address,
                calldata: Bytes,
                hash: B256,
            ) -> Result<Bytes, ChainError> {
                self.0.call_at(from, to, calldata, hash)
            }
            fn logs(
                &self,
                address: Address,
                from_block: u64,
                to_block: u64,
            ) -> Result<Vec<sealbridge_chain::LogEntry>, ChainError> {
                self.0.logs(address, from_block, to_block)
            }
            fn balance(&self, address: Address) -> Result<U256, ChainError> {
                self.0.balance(address)
            }
            fn receipt(
                &self,
                tx_hash: B256,
            ) -> Result<Option<sealbridge_chain::TxReceipt>, ChainError> {
                self.0.receipt(tx_hash)
            }
            fn resync_nonces(&mut self) {
                self.0.resync_nonces();
            }
        }
    };
}

chain_via_field0!(WallClockChain, before_write = stamp);

impl DevChain for WallClockChain {
    fn fund_and_unlock(&mut self, account: Address) -> Result<(), ChainError> {
        self.0.fund_and_unlock(account)
    }
    fn admin(&self) -> Result<Address, ChainError> {
        self.0.admin()
    }
}

/// A JSON-RPC development chain (anvil): accounts are unlocked with `anvil_impersonateAccount`
/// and funded with `anvil_setBalance`; the admin is the node's first unlocked account.
#[derive(Debug)]
pub struct RpcDevChain(pub sealbridge_chain::rpc::RpcChain);

chain_via_field0!(RpcDevChain);

impl DevChain for RpcDevChain {
    fn fund_and_unlock(&mut self, account: Address) -> Result<(), ChainError> {
        self.0
            .set_balance(account, U256::from(10u64).pow(U256::from(18u64)))?;
        self.0.impersonate(account)
    }
    fn admin(&self) -> Result<Address, ChainError> {
        self.0
            .accounts()?
            .first()
            .copied()
            .ok_or_else(|| ChainError::BadRequest("the endpoint has no unlocked account".into()))
    }
    fn funds_participants_at_setup(&self) -> bool {
        false
    }
}

/// The handover trust of a development deployment (issue 12): its development verifiers,
/// [`DEV_THRESHOLD`] of them, and its registry. No other measurement is listed, so its enclave
/// hands over only to its own measurement (the same build on another machine: `sealbridge node
/// --await-handover`). INSECURE, like the verifiers it names.
pub fn handover_trust(
    verifiers: &[k256::ecdsa::SigningKey],
    registry: Address,
) -> sealbridge_enclave::policy::HandoverTrust {
    sealbridge_enclave::policy::HandoverTrust {
        verifiers: verifiers.iter().map(key_address).collect(),
        threshold: u8::try_from(DEV_THRESHOLD).unwrap_or(u8::MAX),
        registry,
        successors: Vec::new(),
        allow_handover: true,
    }
}
