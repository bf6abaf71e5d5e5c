//! Shared fixture: the real compiled contracts deployed on an [`EmbeddedChain`], three verifiers
//! with threshold 2, one allowed measurement, and helpers to build and sign statements.
#![allow(dead_code)]

use alloy_primitives::{Address, B256, Bytes, I256, U256, keccak256};
use k256::ecdsa::SigningKey;
use sealbridge_chain::contracts::{ContractError, DeployParams};
use sealbridge_chain::eip712::{
    effects_hash, sign_attestation_sorted, sign_statement, sort_effects, sort_exits,
};
use sealbridge_chain::embedded::{dev_key, key_address};
use sealbridge_chain::{
    AttestationResult, Chain, Effect, EmbeddedChain, Exit, Sealbridge, Statement,
};

/// The base policy hash the fixture deploys with (the statements carry the composite).
pub const POLICY: B256 = B256::repeat_byte(0x50);
pub const MEASUREMENT: B256 = B256::repeat_byte(0x4d);
/// Lifetime of an attestation result in the fixture.
pub const RESULT_TTL: u64 = 24 * 3600;

pub struct Fixture {
    pub sb: Sealbridge<EmbeddedChain>,
    pub admin: Address,
    pub relayer: Address,
    pub alice: Address,
    pub bob: Address,
    pub carol: Address,
    pub verifiers: Vec<SigningKey>,
    pub enclave: SigningKey,
}

impl Fixture {
    /// Deployed, 3 verifiers, threshold 2, MEASUREMENT allowed; no enclave registered yet.
    pub fn new() -> Self {
        Self::with(|_, _| {})
    }

    /// As [`Fixture::new`], with the deploy parameters changed by `tweak` first (which may also
    /// deploy things on the chain, such as another token).
    pub fn with(tweak: impl FnOnce(&mut EmbeddedChain, &mut DeployParams)) -> Self {
        let mut chain = EmbeddedChain::new();
        let admin = chain.dev_address(0);
        let relayer = chain.dev_address(1);
        let (alice, bob, carol) = (
            chain.dev_address(2),
            chain.dev_address(3),
            chain.dev_address(4),
        );
        let mut params =
            DeployParams::dev(admin, POLICY, vec![alice, bob, carol], vec![MEASUREMENT]);
        tweak(&mut chain, &mut params);
        let mut sb = Sealbridge::deploy(chain, &params).expect("deploy");
        let verifiers: Vec<SigningKey> =
            (0..3).map(|i| dev_key(&format!("verifier/{i}"))).collect();
        for v in &verifiers {
            sb.add_verifier(admin, key_address(v))
                .expect("add verifier");
        }
        sb.set_threshold(admin, 2).expect("threshold");
        let now = sb.chain().block_timestamp().unwrap();
        sb.allow_measurement(admin, MEASUREMENT, now - 10, now + 365 * 24 * 3600)
            .expect("allow measurement");
        Self {
            sb,
            admin,
            relayer,
            alice,
            bob,
            carol,
            verifiers,
            enclave: dev_key("enclave/0"),
        }
    }

    /// Fixture with the enclave registered.
    pub fn registered() -> Self {
        let mut f = Self::new();
        f.register_enclave().expect("register enclave");
        f
    }

    pub fn enclave_address(&self) -> Address {
        key_address(&self.enclave)
    }

    pub fn now(&self) -> u64 {
        self.sb.chain().block_timestamp().unwrap()
    }

    /// A valid SGX result for `enclave`, challenged with the latest block's hash, valid from now
    /// for RESULT_TTL.
    pub fn attestation_for(&self, enclave: Address) -> AttestationResult {
        let now = self.now();
        let block = self.sb.chain().block_number().unwrap();
        let hash = self.sb.chain().block_hash(block).unwrap().unwrap();
        AttestationResult {
            tee: 1,
            measurement: MEASUREMENT,
            tcbStatus: 0,
            enclave,
            ed25519Key: B256::repeat_byte(0xed),
            keyBundleHash: B256::repeat_byte(0x6b),
            evidenceHash: B256::repeat_byte(0xe0),
            advisoryHash: B256::ZERO,
            challengeBlock: block,
            challenge: hash,
            issuedAt: now,
            expiresAt: now + RESULT_TTL,
        }
    }

    pub fn attestation(&self) -> AttestationResult {
        self.attestation_for(self.enclave_address())
    }

    /// Signatures of the first `n` verifiers, ascending by signer.
    pub fn sign_result(&self, r: &AttestationResult, n: usize) -> Vec<Bytes> {
        let keys: Vec<&SigningKey> = self.verifiers.iter().take(n).collect();
        let d = self.sb.deployment;
        sign_attestation_sorted(&keys, r, d.chain_id, d.registry)
    }

    pub fn register(
        &mut self,
        r: &AttestationResult,
        sigs: Vec<Bytes>,
    ) -> Result<(), ContractError> {
        let relayer = self.relayer;
        self.sb.register(relayer, r, sigs).map(|_| ())
    }

    pub fn register_enclave(&mut self) -> Result<(), ContractError> {
        let r = self.attestation();
        let sigs = self.sign_result(&r, 2);
        self.register(&r, sigs)
    }

    /// Mint `amount` SBT to `who` and deposit it into escrow.
    pub fn fund(&mut self, who: Address, amount: u64) {
        let token = self.sb.deployment.token;
        self.sb.mint(who, who, U256::from(amount)).expect("mint");
        self.sb
            .deposit(who, token, U256::from(amount))
            .expect("deposit");
    }

    pub fn token(&self) -> Address {
        self.sb.deployment.token
    }

    pub fn escrow(&self, who: Address) -> U256 {
        self.sb.escrow_balance(who, self.token()).unwrap()
    }

    /// Effect of `delta` SBT for `account`.
    pub fn effect(&self, account: Address, delta: i64) -> Effect {
        Effect {
            account,
            token: self.token(),
            delta: I256::try_from(delta).unwrap(),
        }
    }

    /// The policy hash statements must carry (read from the contract).
    pub fn policy(&self) -> B256 {
        self.sb.policy_hash().unwrap()
    }

    /// Exit of `amount` SBT for `account`.
    pub fn exit(&self, account: Address, amount: u64) -> Exit {
        Exit {
            account,
            token: self.token(),
            amount: U256::from(amount),
        }
    }

    /// The next statement on top of the contract's current state, committing to `effects`
    /// (sorted here) and no exits, valid for an hour around now.
    pub fn next_statement(&self, effects: &mut [Effect]) -> Statement {
        self.next_statement_with(effects, &mut [])
    }

    /// The next statement committing to `effects` and `exits` (both sorted here).
    pub fn next_statement_with(&self, effects: &mut [Effect], exits: &mut [Exit]) -> Statement {
        sort_effects(effects);
        sort_exits(exits);
        let seq = self.sb.last_sequence().unwrap() + 1;
        let now = self.now();
        Statement {
            sequence: seq,
            prevStateRoot: self.sb.state_root().unwrap(),
            newStateRoot: keccak256(format!("state/{seq}")),
            inputsRoot: keccak256(format!("inputs/{seq}")),
            inputCount: 3,
            logSize: 10 * seq,
            logRoot: keccak256(format!("log/{seq}")),
            policyHash: self.policy(),
            effectsHash: effects_hash(effects, exits),
            notBefore: now - 60,
            notAfter: now + 3600,
        }
    }

    pub fn sign(&self, s: &Statement) -> Bytes {
        let d = self.sb.deployment;
        sign_statement(&self.enclave, s, d.chain_id, d.settlement)
    }

    pub fn settle(
        &mut self,
        s: &Statement,
        effects: &[Effect],
        sig: Bytes,
    ) -> Result<sealbridge_chain::SettleOutcome, ContractError> {
        self.settle_exits(s, effects, &[], sig)
    }

    pub fn settle_exits(
        &mut self,
        s: &Statement,
        effects: &[Effect],
        exits: &[Exit],
        sig: Bytes,
    ) -> Result<sealbridge_chain::SettleOutcome, ContractError> {
        let relayer = self.relayer;
        self.sb.settle(relayer, s, effects, exits, sig)
    }

    /// Sign with the fixture enclave and settle.
    pub fn settle_signed(
        &mut self,
        s: &Statement,
        effects: &[Effect],
    ) -> Result<sealbridge_chain::SettleOutcome, ContractError> {
        let sig = self.sign(s);
        self.settle(s, effects, sig)
    }

    /// Sign with the fixture enclave and settle with exits.
    pub fn settle_signed_exits(
        &mut self,
        s: &Statement,
        effects: &[Effect],
        exits: &[Exit],
    ) -> Result<sealbridge_chain::SettleOutcome, ContractError> {
        let sig = self.sign(s);
        self.settle_exits(s, effects, exits, sig)
    }
}

/// Assert that `res` is a revert with custom error `name`.
#[track_caller]
pub fn assert_revert<T: std::fmt::Debug>(res: Result<T, ContractError>, name: &str) {
    match res {
        Err(e) => assert_eq!(e.revert_name(), Some(name), "unexpected error: {e}"),
        Ok(v) => panic!("expected revert {name}, got Ok({v:?})"),
    }
}
