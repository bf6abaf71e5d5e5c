//! Registration freshness and liveness (issue 9), on the embedded chain with the real bytecode:
//!
//! - the attestation result is logged before `register` is sent, so a copy of the node's
//!   transaction mined first (front-running) still ends with the node registered and the result
//!   in the log exactly once;
//! - so does a crash right after the send (the transaction is mined, the node hears nothing):
//!   after a restart the node is registered, the result logged once; and a send reported failed
//!   although it was mined is recognised as the node's own registration;
//! - a registry whose `maxResultLifetime` is shorter than the verifiers' TTL gets results that
//!   live at most that long, renewed in the last third of it (not at every check);
//! - a chain with no block after genesis gives no challenge: a clear error, nothing asked of the
//!   enclave or the verifiers.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy_primitives::{Address, B256, Bytes, U256};
use alloy_sol_types::{SolCall, SolValue};
use sealbridge_chain::{
    Chain, ChainError, EmbeddedChain, LogEntry, Sealbridge, TxReceipt, bindings::EnclaveRegistry,
};
use sealbridge_client::NodeClient;
use sealbridge_deploy::DeployError;
use sealbridge_deploy::dev::{self, DevChain, WallClockChain};
use sealbridge_enclave::{
    Enclave, EnclavePolicy, SettlementTarget,
    boundary::{Request, Response},
    log_entry::EntryKind,
};
use sealbridge_node::Node;
use sealbridge_node::NodeConfig;
use sealbridge_node::NodeError;
use sealbridge_node::node::SharedChain;
use sealbridge_programs::netting::{Netting, NettingConfig};
use sealbridge_proto::eip712::{AttestationResult, registry_domain};
use sealbridge_verifier::registration::{self, Appraisers, RegistrationError};

/// What happens to the node's first `register` transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnRegister {
    /// Another account sends an exact copy first (mined), then the node's goes out (reverts).
    CopiedFirst,
    /// It is mined, but the node is told the send failed (the endpoint dropped the answer).
    MinedButReportedFailed,
    /// It is mined, then the chain becomes unreachable for this node: as if it crashed.
    MinedThenGone,
}

/// The embedded chain with a hook on the node's first `register` transaction.
#[derive(Clone)]
struct Hooked {
    inner: SharedChain<WallClockChain>,
    on_register: OnRegister,
    copier: Address,
    registers_seen: Arc<AtomicUsize>,
    gone: Arc<AtomicBool>,
}

impl Hooked {
    fn new(on_register: OnRegister) -> Self {
        let mut inner = SharedChain::new(WallClockChain::new());
        let copier = Address::repeat_byte(0xc0);
        inner.fund_and_unlock(copier).unwrap();
        Self {
            inner,
            on_register,
            copier,
            registers_seen: Arc::new(AtomicUsize::new(0)),
            gone: Arc::new(AtomicBool::new(false)),
        }
    }

    fn up(&self) -> Result<(), ChainError> {
        if self.gone.load(Relaxed) {
            Err(ChainError::Http {
                method: "eth_call".into(),
                status: 503,
                body: "endpoint down (test)".into(),
            })
        } else {
            Ok(())
        }
    }
}

impl Chain for Hooked {
    fn chain_id(&self) -> Result<u64, ChainError> {
        self.up()?;
        self.inner.chain_id()
    }
    fn block_number(&self) -> Result<u64, ChainError> {
        self.up()?;
        self.inner.block_number()
    }
    fn block_timestamp(&self) -> Result<u64, ChainError> {
        self.up()?;
        self.inner.block_timestamp()
    }
    fn block_hash(&self, number: u64) -> Result<Option<B256>, ChainError> {
        self.up()?;
        self.inner.block_hash(number)
    }
    fn deploy(&mut self, from: Address, init_code: Bytes) -> Result<TxReceipt, ChainError> {
        self.up()?;
        self.inner.deploy(from, init_code)
    }
    fn send(&mut self, from: Address, to: Address, data: Bytes) -> Result<TxReceipt, ChainError> {
        self.up()?;
        let register = data.starts_with(&EnclaveRegistry::registerCall::SELECTOR);
        if !register || self.registers_seen.fetch_add(1, Relaxed) > 0 {
            return self.inner.send(from, to, data);
        }
        match self.on_register {
            OnRegister::CopiedFirst => {
                let copy = self.inner.send(self.copier, to, data.clone())?;
                assert!(copy.success, "the copy registers");
                self.inner.send(from, to, data)
            }
            OnRegister::MinedButReportedFailed => {
                assert!(self.inner.send(from, to, data)?.success);
                Err(ChainError::Http {
                    method: "eth_sendRawTransaction".into(),
                    status: 502,
                    body: "connection reset (test)".into(),
                })
            }
            OnRegister::MinedThenGone => {
                assert!(self.inner.send(from, to, data)?.success);
                self.gone.store(true, Relaxed);
                Err(ChainError::Http {
                    method: "eth_sendRawTransaction".into(),
                    status: 502,
                    body: "connection reset (test)".into(),
                })
            }
        }
    }
    fn call(&self, from: Address, to: Address, data: Bytes) -> Result<Bytes, ChainError> {
        self.up()?;
        self.inner.call(from, to, data)
    }
    fn logs(&self, address: Address, from: u64, to: u64) -> Result<Vec<LogEntry>, ChainError> {
        self.up()?;
        self.inner.logs(address, from, to)
    }
    fn balance(&self, address: Address) -> Result<U256, ChainError> {
        self.up()?;
        self.inner.balance(address)
    }
    fn receipt(&self, tx_hash: B256) -> Result<Option<TxReceipt>, ChainError> {
        self.up()?;
        self.inner.receipt(tx_hash)
    }
}

impl DevChain for Hooked {
    fn fund_and_unlock(&mut self, account: Address) -> Result<(), ChainError> {
        self.up()?;
        self.inner.fund_and_unlock(account)
    }
    fn admin(&self) -> Result<Address, ChainError> {
        self.up()?;
        self.inner.admin()
    }
}

fn config(dir: &std::path::Path) -> NodeConfig {
    let mut cfg = NodeConfig::new(dir.to_path_buf(), "127.0.0.1:0".parse().unwrap());
    cfg.participants = 4;
    cfg.batch_size = 4;
    cfg.batch_interval = Duration::from_millis(50);
    cfg.poll = Duration::from_millis(25);
    cfg
}

/// The attestation results in the node's log (from its tiles).
fn logged_results(dir: &std::path::Path, c: &NodeClient) -> Vec<AttestationResult> {
    let size = c.status().unwrap()["log_size"].as_u64().unwrap();
    sealbridge_log::TileReader::open(dir.join("log"))
        .unwrap()
        .at(size)
        .read_all_entries()
        .unwrap()
        .iter()
        .filter_map(|e| {
            let (kind, body) = sealbridge_enclave::log_entry::decode(e)?;
            if kind != EntryKind::AttestationResult {
                return None;
            }
            let len = u32::from_be_bytes(body.get(..4)?.try_into().ok()?) as usize;
            AttestationResult::abi_decode(body.get(4..4 + len)?).ok()
        })
        .collect()
}

/// The node is registered under exactly one logged result, the one the registry holds.
fn registered_once(dir: &std::path::Path, node: &Node, chain: SharedChain<WallClockChain>) {
    let c = NodeClient::new(&format!("http://{}", node.addr));
    let (_, info) = c.get_json("/v1/enclave").unwrap();
    let enclave: Address = info["address"].as_str().unwrap().parse().unwrap();
    let sb = Sealbridge::attach(chain, node.setup.deployment());
    assert!(sb.is_active(enclave).unwrap(), "registered");
    let on_chain = sb.enclave(enclave).unwrap().resultHash;
    let domain = registry_domain(node.setup.chain_id, node.setup.registry);
    let results = logged_results(dir, &c);
    assert_eq!(results.len(), 1, "logged once: {results:?}");
    assert_eq!(
        results[0].digest(&domain),
        on_chain,
        "the registered result"
    );
    assert_ne!(results[0].challengeBlock, 0, "a block-hash challenge");
}

#[test]
fn a_copy_of_the_register_transaction_mined_first_still_ends_registered_and_logged_once() {
    let dir = tempfile::tempdir().unwrap();
    let chain = Hooked::new(OnRegister::CopiedFirst);
    let node = Node::start(config(dir.path()), chain.clone()).unwrap();
    assert_eq!(chain.registers_seen.load(Relaxed), 1);
    registered_once(dir.path(), &node, chain.inner.clone());
}

#[test]
fn a_send_reported_failed_that_was_mined_is_the_nodes_own_registration() {
    let dir = tempfile::tempdir().unwrap();
    let chain = Hooked::new(OnRegister::MinedButReportedFailed);
    let node = Node::start(config(dir.path()), chain.clone()).unwrap();
    assert_eq!(chain.registers_seen.load(Relaxed), 1, "not sent again");
    registered_once(dir.path(), &node, chain.inner.clone());
}

#[test]
fn a_crash_right_after_register_was_sent_ends_registered_and_logged_once() {
    let dir = tempfile::tempdir().unwrap();
    let chain = Hooked::new(OnRegister::MinedThenGone);
    let err = Node::start(config(dir.path()), chain.clone()).unwrap_err();
    assert!(
        matches!(err, NodeError::Registration(RegistrationError::Reverted(_))),
        "{err}"
    );
    // Restarted on the same data dir, the chain reachable again: the registration it sent
    // is on chain, so it is not registered again, and its result is in the log once.
    chain.gone.store(false, Relaxed);
    let node = Node::start(config(dir.path()), chain.clone()).unwrap();
    assert_eq!(
        chain.registers_seen.load(Relaxed),
        1,
        "not registered again"
    );
    registered_once(dir.path(), &node, chain.inner.clone());
}

/// An enclave booted for `sb`'s deployment (with the test token), and a `call` into it.
fn enclave_for(
    sb: &mut Sealbridge<EmbeddedChain>,
    admin: Address,
    participants: &[dev::DevParticipant],
) -> Mutex<Enclave<Netting>> {
    let policy = EnclavePolicy::new(
        NettingConfig {
            participants: participants.iter().map(|p| p.netting()).collect(),
            tokens: vec![sb.deployment.token],
        },
        8,
    );
    sb.set_policy_hash(admin, policy.base_hash()).unwrap();
    Mutex::new(
        Enclave::boot(
            policy.clone(),
            Netting::new(&policy.netting),
            SettlementTarget {
                chain_id: sb.deployment.chain_id,
                settlement: sb.deployment.settlement,
            },
            Box::new(rand_core::OsRng),
            sb.chain().block_timestamp().unwrap(),
        )
        .unwrap(),
    )
}

#[test]
fn results_live_at_most_the_registrys_max_lifetime_and_renew_in_its_last_third() {
    const DAY: u64 = 86_400;
    let dir = tempfile::tempdir().unwrap();
    let chain = EmbeddedChain::new();
    let admin = chain.dev_address(0);
    let participants = dev::participants(3);
    let verifiers = dev::dev_verifiers(dir.path()).unwrap();
    let now = chain.block_timestamp().unwrap();
    let mut params = dev::deploy_params(
        admin,
        participants.iter().map(|p| p.account).collect(),
        &verifiers,
        now,
        DAY,
    );
    // Shorter than the verifiers' 7-day TTL, and than the renewal margin of a 7-day result.
    params.registry.max_result_lifetime = DAY as u32;
    let mut sb = Sealbridge::deploy(chain, &params).unwrap();
    let enclave = enclave_for(&mut sb, admin, &participants);
    let call = |r: Request| -> Result<Response, RegistrationError> {
        Ok(handle_stepping(&mut enclave.lock().unwrap(), r))
    };
    let description = match call(Request::Describe).unwrap() {
        Response::Description(d) => *d,
        r => panic!("{r:?}"),
    };
    let address = description.key_bundle.address;
    let now = sb.chain().block_timestamp().unwrap();
    let (result, _) = dev::register(&mut sb, admin, &description, &verifiers, call, now).unwrap();
    let result = AttestationResult::abi_decode(&result).unwrap();
    assert_eq!(result.expiresAt - result.issuedAt, DAY);
    assert_eq!(sb.enclave(address).unwrap().expiresAt, result.expiresAt);

    // Not due a minute later (a 7-day margin would renew a one-day result at every check).
    let now = sb.chain().block_timestamp().unwrap() + 60;
    let renew = |sb: &mut Sealbridge<EmbeddedChain>, now| {
        dev::renew_if_due(
            sb,
            admin,
            &description,
            &verifiers,
            call,
            now,
            dev::RENEW_MARGIN,
        )
        .unwrap()
    };
    assert!(renew(&mut sb, now).is_none());
    // In the last third of its life: renewed, again for at most a day.
    let skip = result.expiresAt - sb.chain().block_timestamp().unwrap() - DAY / 3 + 60;
    sb.chain_mut().advance_time(skip);
    sb.chain_mut().mine(1);
    let now = sb.chain().block_timestamp().unwrap();
    let (renewed, _) = renew(&mut sb, now).expect("due in the last third");
    let renewed = AttestationResult::abi_decode(&renewed).unwrap();
    assert!(renewed.expiresAt > result.expiresAt);
    assert!(renewed.expiresAt - renewed.issuedAt <= DAY);
    assert_eq!(sb.enclave(address).unwrap().expiresAt, renewed.expiresAt);
}

#[test]
fn a_revoked_enclave_is_not_registered_again_and_nothing_more_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let chain = EmbeddedChain::new();
    let admin = chain.dev_address(0);
    let participants = dev::participants(3);
    let verifiers = dev::dev_verifiers(dir.path()).unwrap();
    let now = chain.block_timestamp().unwrap();
    let params = dev::deploy_params(
        admin,
        participants.iter().map(|p| p.account).collect(),
        &verifiers,
        now,
        86_400,
    );
    let mut sb = Sealbridge::deploy(chain, &params).unwrap();
    let enclave = enclave_for(&mut sb, admin, &participants);
    let call = |r: Request| -> Result<Response, RegistrationError> {
        Ok(handle_stepping(&mut enclave.lock().unwrap(), r))
    };
    let description = match call(Request::Describe).unwrap() {
        Response::Description(d) => *d,
        r => panic!("{r:?}"),
    };
    let results = || match call(Request::LogEntries).unwrap() {
        Response::LogEntries { entries, .. } => entries
            .iter()
            .filter(|e| {
                sealbridge_enclave::log_entry::decode(e)
                    .is_some_and(|(k, _)| k == EntryKind::AttestationResult)
            })
            .count(),
        r => panic!("{r:?}"),
    };
    let now = sb.chain().block_timestamp().unwrap();
    dev::register(&mut sb, admin, &description, &verifiers, call, now).unwrap();
    assert_eq!(results(), 1);
    // The guardian revokes it: every renewal is refused before a result is logged.
    sb.revoke_enclave(admin, description.key_bundle.address)
        .unwrap();
    for _ in 0..2 {
        let err = dev::renew_if_due(
            &mut sb,
            admin,
            &description,
            &verifiers,
            call,
            now,
            u64::MAX,
        )
        .unwrap_err();
        assert!(
            matches!(err, DeployError::Registration(RegistrationError::Revoked(a)) if a == description.key_bundle.address),
            "{err}"
        );
        assert!(err.to_string().contains("never register again"), "{err}");
    }
    assert_eq!(results(), 0, "nothing logged since");
}

#[test]
fn a_chain_with_only_its_genesis_block_gives_no_challenge_and_nothing_is_asked() {
    // Attached to a deployment on a chain that has mined nothing yet: block 0 only.
    let chain = EmbeddedChain::new();
    assert_eq!(chain.block_number().unwrap(), 0);
    let admin = chain.dev_address(0);
    let deployment = sealbridge_chain::Deployment {
        chain_id: chain.chain_id().unwrap(),
        admin,
        registry: Address::repeat_byte(1),
        settlement: Address::repeat_byte(2),
        token: Address::repeat_byte(3),
    };
    let mut sb = Sealbridge::attach(chain, deployment);
    let dir = tempfile::tempdir().unwrap();
    let appraisers = Appraisers::insecure_in_process(&dev::dev_verifiers(dir.path()).unwrap());
    let mut asked = 0;
    let description = {
        let mut sb2 = Sealbridge::deploy(
            EmbeddedChain::new(),
            &sealbridge_chain::DeployParams::dev(admin, B256::ZERO, vec![admin], vec![]),
        )
        .unwrap();
        let enclave = enclave_for(&mut sb2, admin, &dev::participants(2));
        match enclave.lock().unwrap().handle(Request::Describe) {
            Response::Description(d) => *d,
            r => panic!("{r:?}"),
        }
    };
    let err = registration::attest_and_register(
        &mut sb,
        admin,
        &description,
        &appraisers,
        |_| {
            asked += 1;
            Err(RegistrationError::enclave("stopped"))
        },
        0,
    )
    .unwrap_err();
    assert!(matches!(err, RegistrationError::NoChallengeBlock), "{err}");
    assert!(err.to_string().contains("challenge block 0"), "{err}");
    assert_eq!(asked, 0, "the enclave was not asked for evidence");
}

/// Serve `r`, first walking the enclave's clock to the request's time in steps its policy
/// allows (one request may step it at most `max_clock_step_secs`, issue 11), as the core does.
fn handle_stepping(e: &mut sealbridge_enclave::Enclave<Netting>, r: Request) -> Response {
    if let Request::Evidence { now, .. } = &r {
        while e.enclave_time().saturating_add(3600) < *now {
            let step = e.enclave_time() + 3600;
            e.handle(Request::Tick { now: step });
        }
    }
    e.handle(r)
}
