//! Continuous attestation: the registration is renewed with fresh evidence before it expires,
//! by the same (stable) development verifier set, and not before it is due; each result is in
//! the enclave's log before its registration is sent, once.

use std::sync::Mutex;

use sealbridge_chain::{Chain, EmbeddedChain, Sealbridge};
use sealbridge_deploy::dev;
use sealbridge_enclave::{
    Enclave, EnclavePolicy, SettlementTarget,
    boundary::{Request, Response},
    log_entry::EntryKind,
};
use sealbridge_programs::netting::{Netting, NettingConfig};

#[test]
fn registration_is_renewed_before_expiry_and_not_earlier() {
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
    let policy = EnclavePolicy::new(
        NettingConfig {
            participants: participants.iter().map(|p| p.netting()).collect(),
            tokens: vec![sb.deployment.token],
        },
        8,
    );
    let now = sb.chain().block_timestamp().unwrap();
    let enclave = Mutex::new(
        Enclave::boot(
            policy.clone(),
            Netting::new(&policy.netting),
            SettlementTarget {
                chain_id: sb.deployment.chain_id,
                settlement: sb.deployment.settlement,
            },
            Box::new(rand_core::OsRng),
            now,
        )
        .unwrap(),
    );
    let call =
        |r: Request| -> Result<Response, sealbridge_verifier::registration::RegistrationError> {
            Ok(handle_stepping(&mut enclave.lock().unwrap(), r))
        };
    let description = match call(Request::Describe).unwrap() {
        Response::Description(d) => *d,
        r => panic!("{r:?}"),
    };
    sb.set_policy_hash(admin, policy.base_hash()).unwrap();
    assert_eq!(sb.policy_hash().unwrap(), description.policy_hash);
    let address = description.key_bundle.address;
    let logged_results = || match call(Request::LogEntries).unwrap() {
        Response::LogEntries { entries, .. } => entries
            .iter()
            .filter(|e| {
                sealbridge_enclave::log_entry::decode(e)
                    .is_some_and(|(k, _)| k == EntryKind::AttestationResult)
            })
            .count(),
        r => panic!("{r:?}"),
    };

    // The verifier keys are stable: the same seed file gives the same keys.
    let again = dev::dev_verifiers(dir.path()).unwrap();
    assert_eq!(
        verifiers.iter().map(|k| k.to_bytes()).collect::<Vec<_>>(),
        again.iter().map(|k| k.to_bytes()).collect::<Vec<_>>()
    );

    assert_eq!(verifiers.len(), 3);
    dev::register(&mut sb, admin, &description, &verifiers, call, now).unwrap();
    assert!(sb.is_active(address).unwrap());
    assert_eq!(logged_results(), 1, "the registered result is logged once");
    let first_expiry = sb.enclave(address).unwrap().expiresAt;

    // Not due yet: nothing is sent.
    let now = sb.chain().block_timestamp().unwrap();
    let none = dev::renew_if_due(
        &mut sb,
        admin,
        &description,
        &verifiers,
        call,
        now,
        dev::RENEW_MARGIN,
    )
    .unwrap();
    assert!(none.is_none());
    assert_eq!(sb.enclave(address).unwrap().expiresAt, first_expiry);

    // Inside the margin: renewed with a later expiry, still active, a result to log.
    let chain_now = sb.chain().block_timestamp().unwrap();
    let skip = first_expiry - chain_now - dev::RENEW_MARGIN + 60;
    sb.chain_mut().advance_time(skip);
    sb.chain_mut().mine(1);
    let now = sb.chain().block_timestamp().unwrap();
    let (_, sigs) = dev::renew_if_due(
        &mut sb,
        admin,
        &description,
        &verifiers,
        call,
        now,
        dev::RENEW_MARGIN,
    )
    .unwrap()
    .expect("a renewal was due");
    let renewed = sb.enclave(address).unwrap().expiresAt;
    assert!(renewed > first_expiry, "{renewed} <= {first_expiry}");
    assert!(sb.is_active(address).unwrap());
    // All three development verifiers sign; the registry needs two.
    assert_eq!(sigs.len(), 3);
    assert_eq!(sb.threshold().unwrap(), 2);
    assert_eq!(logged_results(), 1, "the renewal's result is logged, once");

    // Without renewal the registration would have lapsed at the first expiry.
    let chain_now = sb.chain().block_timestamp().unwrap();
    sb.chain_mut().advance_time(first_expiry - chain_now + 10);
    sb.chain_mut().mine(1);
    assert!(
        sb.is_active(address).unwrap(),
        "renewed registration lapsed"
    );
}

#[test]
fn a_bad_verifier_seed_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(dev::DEV_VERIFIER_SEED_FILE), [1u8; 7]).unwrap();
    let err = dev::dev_verifiers(dir.path()).unwrap_err();
    assert!(err.to_string().contains("32 bytes"), "{err}");
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
