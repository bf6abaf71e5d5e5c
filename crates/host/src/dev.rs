//! Development setup (`sealbridge node --dev`): deterministic participants, contract deployment,
//! registration through a development verifier, escrow funding from prefunded accounts.
//!
//! INSECURE by design: participants' keys derive from public labels so that `sealbridge load`
//! can sign for them, verifiers' keys are random and thrown away, and the simulated TEE is
//! allowed on chain. Never use `--dev` with anything of value.

use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use alloy_sol_types::SolValue;
use sealbridge_attest::{Evidence, Policy as AppraisalPolicy, verifier};
use sealbridge_chain::{Chain, ChainError, EmbeddedChain, Sealbridge, embedded::key_address};
use sealbridge_enclave::boundary::{Description, Request, Response};
use sealbridge_programs::netting::Participant;
use sealbridge_seal::keys::Ed25519SigningKey;

use crate::HostError;

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
) -> Result<(), HostError> {
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

/// An attestation result (ABI-encoded) and the verifiers' signatures, for the enclave's log.
pub type SignedRegistration = (Vec<u8>, Vec<Vec<u8>>);

/// Renew the registration when less than this remains (a third of the verifiers' result TTL).
pub const RENEW_MARGIN: u64 = verifier::DEFAULT_RESULT_TTL / 3;

/// The two development verifiers' keys, from [`DEV_VERIFIER_SEED_FILE`] (created on first use).
pub fn dev_verifiers(
    data_dir: &std::path::Path,
) -> Result<Vec<k256::ecdsa::SigningKey>, HostError> {
    let path = data_dir.join(DEV_VERIFIER_SEED_FILE);
    let seed: [u8; 32] = match std::fs::read(&path) {
        Ok(bytes) => bytes.try_into().map_err(|_| {
            HostError::Config(format!("{} must hold exactly 32 bytes", path.display()))
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut seed);
            std::fs::write(&path, seed)
                .map_err(|e| HostError::Storage(format!("{}: {e}", path.display())))?;
            seed
        }
        Err(e) => return Err(HostError::Storage(format!("{}: {e}", path.display()))),
    };
    (0..2u8)
        .map(|i| {
            k256::ecdsa::SigningKey::from_slice(
                keccak256([seed.as_slice(), &[i]].concat()).as_slice(),
            )
            .map_err(|_| HostError::Config("development verifier seed gives no key".into()))
        })
        .collect()
}

/// Register the enclave: governance admits the development verifiers (threshold 2), the
/// simulated TEE and the measurement, then [`attest_and_register`]. Returns the ABI-encoded
/// result and signatures for the enclave's log.
pub fn register<C: Chain>(
    sb: &mut Sealbridge<C>,
    admin: Address,
    description: &Description,
    verifiers: &[k256::ecdsa::SigningKey],
    call: impl FnMut(Request) -> Result<Response, HostError>,
    now: u64,
) -> Result<SignedRegistration, HostError> {
    for v in verifiers {
        if !sb.is_verifier(key_address(v))? {
            sb.add_verifier(admin, key_address(v))?;
        }
    }
    sb.set_threshold(admin, 2)?;
    sb.allow_simulated(admin, true)?;
    let chain_now = sb.chain().block_timestamp()?;
    sb.allow_measurement(
        admin,
        description.measurement,
        chain_now,
        chain_now + 10 * 365 * 86_400,
    )?;
    attest_and_register(sb, admin, description, verifiers, call, now)
}

/// Continuous attestation (DESIGN §4): when the registration expires within `margin` seconds of
/// chain time, fetch fresh evidence bound to the latest block hash, have the verifiers appraise
/// and sign it again, and renew the registration. `Ok(None)` when no renewal is due.
pub fn renew_if_due<C: Chain>(
    sb: &mut Sealbridge<C>,
    admin: Address,
    description: &Description,
    verifiers: &[k256::ecdsa::SigningKey],
    call: impl FnMut(Request) -> Result<Response, HostError>,
    now: u64,
    margin: u64,
) -> Result<Option<SignedRegistration>, HostError> {
    let expires_at = sb.enclave(description.key_bundle.address)?.expiresAt;
    let chain_now = sb.chain().block_timestamp()?;
    if expires_at > chain_now.saturating_add(margin) {
        return Ok(None);
    }
    attest_and_register(sb, admin, description, verifiers, call, now).map(Some)
}

/// Evidence bound to the latest block hash, appraised by every verifier with the insecure
/// development policy, signed, and submitted to the registry (a first registration or a renewal).
pub fn attest_and_register<C: Chain>(
    sb: &mut Sealbridge<C>,
    admin: Address,
    description: &Description,
    verifiers: &[k256::ecdsa::SigningKey],
    mut call: impl FnMut(Request) -> Result<Response, HostError>,
    now: u64,
) -> Result<SignedRegistration, HostError> {
    let chain_now = sb.chain().block_timestamp()?;
    let block = sb.chain().block_number()?;
    let hash = sb
        .chain()
        .block_hash(block)?
        .ok_or_else(|| HostError::Chain("no hash for the latest block".into()))?;
    let evidence = match call(Request::Evidence {
        challenge: hash.to_vec(),
        now,
    })? {
        Response::Evidence { evidence, .. } => Evidence::Simulated(evidence),
        other => return Err(HostError::Enclave(format!("unexpected {other:?}"))),
    };
    let bundle = description.key_bundle;
    let binding = verifier::KeyBinding {
        key_bundle: bundle.to_bytes(),
        key_bundle_hash: bundle.hash(),
        enclave: bundle.address,
        ed25519_key: B256::from(bundle.ed25519),
    };
    let challenge = verifier::Challenge { block, hash };
    let mut signed = Vec::new();
    for key in verifiers {
        let role = verifier::VerifierRole::new(key.clone(), AppraisalPolicy::insecure_dev());
        signed.push(
            role.attest(
                &evidence,
                &sealbridge_attest::Collateral::None,
                &binding,
                challenge,
                chain_now.max(now),
                sb.deployment.chain_id,
                sb.deployment.registry,
            )
            .map_err(|e| HostError::Chain(format!("development verifier: {e}")))?,
        );
    }
    let (result, sigs) =
        verifier::collect(&signed).map_err(|e| HostError::Chain(format!("verifiers: {e}")))?;
    let chain_result: sealbridge_chain::AttestationResult = (&result).into();
    let r = sb.register(
        admin,
        &chain_result,
        sigs.iter().cloned().map(Bytes::from).collect(),
    )?;
    if !r.success {
        return Err(HostError::Chain("register reverted".into()));
    }
    Ok((result.abi_encode(), sigs))
}

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
                genesis_timestamp: crate::unix_now().saturating_sub(1),
                ..Default::default()
            },
        ))
    }

    fn stamp(&mut self) {
        let latest = self.0.block_timestamp().unwrap_or(0);
        let now = crate::unix_now();
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

impl Chain for WallClockChain {
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
        self.stamp();
        self.0.deploy(from, init_code)
    }
    fn send(
        &mut self,
        from: Address,
        to: Address,
        calldata: Bytes,
    ) -> Result<sealbridge_chain::TxReceipt, ChainError> {
        self.stamp();
        self.0.send(from, to, calldata)
    }
    fn call(&self, from: Address, to: Address, calldata: Bytes) -> Result<Bytes, ChainError> {
        self.0.call(from, to, calldata)
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
    fn receipt(&self, tx_hash: B256) -> Result<Option<sealbridge_chain::TxReceipt>, ChainError> {
        self.0.receipt(tx_hash)
    }
}

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

impl Chain for RpcDevChain {
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
        self.0.deploy(from, init_code)
    }
    fn send(
        &mut self,
        from: Address,
        to: Address,
        calldata: Bytes,
    ) -> Result<sealbridge_chain::TxReceipt, ChainError> {
        self.0.send(from, to, calldata)
    }
    fn call(&self, from: Address, to: Address, calldata: Bytes) -> Result<Bytes, ChainError> {
        self.0.call(from, to, calldata)
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
    fn receipt(&self, tx_hash: B256) -> Result<Option<sealbridge_chain::TxReceipt>, ChainError> {
        self.0.receipt(tx_hash)
    }
}

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
}
