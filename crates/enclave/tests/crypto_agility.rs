//! Crypto agility through the boundary (issue 12 part 4): X-Wing envelopes opened with the
//! epoch's X-Wing key (announced, signed, beside the X25519 key; erased with its epoch), the suite
//! lifecycle enforced by enclave time (`suite-deprecated`, changing nothing), and the N−1
//! envelope window (version 1 accepted, closed by `min_envelope_version`).

mod common;

use alloy_primitives::Address;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sealbridge_enclave::{
    Enclave, EnclavePolicy, SettlementTarget,
    boundary::{ChainEvent, Description, Request, Response, SubmitOutcome},
    epochs::{EpochAnnouncement, XWingAnnouncement},
};
use sealbridge_programs::netting::{Netting, Obligation};
use sealbridge_proto::{
    EnvelopeHeader, Epoch, Nonce, ProgramId, ReasonCode, Suite, SuitePolicy, SuiteState, TraceId,
};
use sealbridge_seal::{
    envelope::{Recipient, seal_to},
    keys::{Ed25519PublicKey, Ed25519SigningKey},
    receipt::UNLOGGED_SEQUENCE,
};

const T0: u64 = 1_700_000_000;
const TOKEN: Address = Address::repeat_byte(0xee);
const TARGET: SettlementTarget = SettlementTarget {
    chain_id: 31337,
    settlement: Address::repeat_byte(0x5e),
};

struct H {
    enclave: Enclave<Netting>,
    users: Vec<(Ed25519SigningKey, Address)>,
    rng: ChaCha20Rng,
}

impl H {
    fn new(adjust: impl FnOnce(EnclavePolicy) -> EnclavePolicy) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let (users, policy) = common::participants_and_policy(&mut rng, 3, TOKEN, 64);
        let policy = adjust(policy);
        let mut enclave = Enclave::boot(
            policy.clone(),
            Netting::new(&policy.netting),
            TARGET,
            Box::new(ChaCha20Rng::seed_from_u64(5)),
            T0,
        )
        .unwrap();
        for (_, a) in &users {
            enclave.handle(Request::Chain(ChainEvent::Deposit {
                account: *a,
                token: TOKEN,
                amount: 10_000,
            }));
        }
        Self {
            enclave,
            users,
            rng,
        }
    }

    fn describe(&mut self) -> Description {
        match self.enclave.handle(Request::Describe) {
            Response::Description(d) => *d,
            r => panic!("{r:?}"),
        }
    }

    /// An obligation sealed as a client reading the description would, with `suite` and
    /// envelope `version`.
    fn seal(&mut self, suite: Suite, version: u8, from: usize, now: u64) -> Vec<u8> {
        let d = self.describe();
        let key = Ed25519PublicKey(d.key_bundle.ed25519);
        let ann = EpochAnnouncement::verify(&d.epoch_announcement, &key).unwrap();
        let x = XWingAnnouncement::verify(&d.xwing_announcement, &key).unwrap();
        let mut h = EnvelopeHeader::new(
            d.key_bundle.instance_id(),
            ann.epoch,
            ProgramId(d.program_id.0),
            Nonce(self.rng.r#gen()),
            now + 3 * 3600,
            TraceId(self.rng.r#gen()),
        );
        h.suite = suite;
        h.version = version;
        let ob = Obligation {
            to: self.users[(from + 1) % 3].1,
            token: TOKEN,
            amount: 5,
        };
        let recipient = match suite {
            Suite::XWingAes256Gcm => Recipient::XWing(&x.public_key),
            _ => Recipient::X25519(&ann.public_key),
        };
        seal_to(
            &h,
            recipient,
            &self.users[from].0,
            &ob.encode(),
            &mut self.rng,
        )
        .unwrap()
    }

    fn submit(&mut self, envelope: Vec<u8>, now: u64) -> SubmitOutcome {
        match self.enclave.handle(Request::Submit { envelope, now }) {
            Response::Submitted(o) => *o,
            r => panic!("{r:?}"),
        }
    }

    fn tick(&mut self, now: u64) {
        match self.enclave.handle(Request::Tick { now }) {
            Response::Ticked { .. } => {}
            r => panic!("{r:?}"),
        }
    }
}

#[test]
fn the_enclave_announces_an_xwing_key_and_opens_xwing_envelopes() {
    let mut h = H::new(|p| p);
    let d = h.describe();
    let key = Ed25519PublicKey(d.key_bundle.ed25519);
    let x = XWingAnnouncement::verify(&d.xwing_announcement, &key).unwrap();
    let ann = EpochAnnouncement::verify(&d.epoch_announcement, &key).unwrap();
    assert_eq!((x.instance, x.epoch), (ann.instance, ann.epoch));
    assert_eq!((x.not_before, x.not_after), (ann.not_before, ann.not_after));
    assert_eq!(x.suites, SuitePolicy::default());
    // A flipped byte in the signed announcement does not verify.
    let mut bad = d.xwing_announcement.clone();
    bad[100] ^= 1;
    assert!(XWingAnnouncement::verify(&bad, &key).is_err());
    assert!(XWingAnnouncement::verify(&d.xwing_announcement[..200], &key).is_err());
    for suite in Suite::ALL {
        let env = h.seal(suite, 2, 0, T0);
        let out = h.submit(env, T0);
        assert_eq!(out.rejected, None, "{suite}");
    }
    // An X25519-suite envelope relabelled as X-Wing (suite field 1 -> 3 in the protected
    // header) is not opened with the X-Wing key: refused malformed (alg and suite disagree, `ek`
    // is 32 bytes not 1120) or undecryptable, and nothing is recorded — the original, sent
    // afterwards, is still accepted.
    let env = h.seal(Suite::X25519Sha256Aes128Gcm, 2, 1, T0);
    let suite_field = [0x3a, 0x00, 0x01, 0x00, 0x01, 0x01];
    let at = env
        .windows(suite_field.len())
        .position(|w| w == suite_field)
        .expect("the suite field in the protected header");
    let mut relabelled = env.clone();
    relabelled[at + 5] = 0x03;
    let out = h.submit(relabelled, T0);
    assert!(
        matches!(
            out.rejected,
            Some(ReasonCode::Malformed | ReasonCode::Undecryptable)
        ),
        "{:?}",
        out.rejected
    );
    assert_eq!(h.submit(env.clone(), T0).rejected, None);
    assert_eq!(h.submit(env, T0).rejected, Some(ReasonCode::Replayed));
}

#[test]
fn the_previous_epochs_xwing_key_lives_through_its_grace_window_only() {
    let mut h = H::new(|p| p);
    let old = h.seal(Suite::XWingAes256Gcm, 2, 0, T0);
    let old2 = h.seal(Suite::XWingAes256Gcm, 2, 1, T0);
    let x1 = {
        let d = h.describe();
        XWingAnnouncement::verify(
            &d.xwing_announcement,
            &Ed25519PublicKey(d.key_bundle.ed25519),
        )
        .unwrap()
    };
    // Epoch 2 starts at T0 + 3600; epoch 1's keys stay usable until + 600 s of grace.
    h.tick(T0 + 3600);
    let x2 = {
        let d = h.describe();
        XWingAnnouncement::verify(
            &d.xwing_announcement,
            &Ed25519PublicKey(d.key_bundle.ed25519),
        )
        .unwrap()
    };
    assert_eq!(x2.epoch, Epoch(2));
    assert_ne!(x2.public_key, x1.public_key, "a new X-Wing key every epoch");
    assert_eq!(h.submit(old, T0 + 3600).rejected, None, "in grace");
    h.tick(T0 + 4200);
    assert_eq!(
        h.submit(old2, T0 + 4200).rejected,
        Some(ReasonCode::RetiredEpoch),
        "refused after its grace window (the seed's erasure is checked through the live \
         secrets: epochs.rs `a_retired_epochs_xwing_seed_is_erased`)"
    );
    let fresh = h.seal(Suite::XWingAes256Gcm, 2, 2, T0 + 4200);
    assert_eq!(h.submit(fresh, T0 + 4200).rejected, None);
}

#[test]
fn a_deprecated_suite_is_refused_from_its_date_by_enclave_time_changing_nothing() {
    let sunset = T0 + 1000;
    let mut h = H::new(|p| {
        p.with_suites(SuitePolicy::default().with(
            Suite::X25519Sha256ChaCha20Poly1305,
            SuiteState::DeprecatedAfter(sunset),
        ))
    });
    let d = h.describe();
    let x = XWingAnnouncement::verify(
        &d.xwing_announcement,
        &Ed25519PublicKey(d.key_bundle.ed25519),
    )
    .unwrap();
    assert_eq!(
        x.suites.state(Suite::X25519Sha256ChaCha20Poly1305),
        SuiteState::DeprecatedAfter(sunset)
    );
    let before = h.seal(Suite::X25519Sha256ChaCha20Poly1305, 2, 0, T0);
    assert_eq!(
        h.submit(before, sunset - 1).rejected,
        None,
        "readable until the date"
    );
    let kept = h.seal(Suite::X25519Sha256ChaCha20Poly1305, 2, 1, T0);
    h.tick(sunset);
    let fingerprint = |h: &H| {
        (
            h.enclave.log_head(),
            h.enclave.growth_counters().replay_pairs,
            h.enclave.growth_counters().pending_inputs,
        )
    };
    let at_sunset = fingerprint(&h);
    let out = h.submit(kept.clone(), sunset);
    assert_eq!(out.rejected, Some(ReasonCode::SuiteDeprecated));
    assert_eq!(out.sequence, UNLOGGED_SEQUENCE);
    assert!(!out.logged);
    assert_eq!(fingerprint(&h), at_sunset, "nothing changed");
    // A host reporting an earlier time does not move the enclave's clock back.
    h.tick(sunset - 500);
    assert_eq!(
        h.submit(kept, sunset - 500).rejected,
        Some(ReasonCode::SuiteDeprecated)
    );
    // The others still work.
    for suite in [Suite::X25519Sha256Aes128Gcm, Suite::XWingAes256Gcm] {
        let env = h.seal(suite, 2, 2, sunset);
        assert_eq!(h.submit(env, sunset).rejected, None, "{suite}");
    }
    // A forbidden suite is unsupported-suite (not deprecated).
    let mut h = H::new(|p| {
        p.with_suites(SuitePolicy::default().with(Suite::XWingAes256Gcm, SuiteState::Forbidden))
    });
    let env = h.seal(Suite::XWingAes256Gcm, 2, 0, T0);
    assert_eq!(
        h.submit(env, T0).rejected,
        Some(ReasonCode::UnsupportedSuite)
    );
}

#[test]
fn version_1_envelopes_are_accepted_until_the_policy_closes_the_window() {
    let mut h = H::new(|p| p);
    let v1 = h.seal(Suite::X25519Sha256Aes128Gcm, 1, 0, T0);
    assert_eq!(h.submit(v1, T0).rejected, None);
    let mut h = H::new(|mut p| {
        p.min_envelope_version = 2;
        p
    });
    let v1 = h.seal(Suite::X25519Sha256Aes128Gcm, 1, 0, T0);
    let v2 = h.seal(Suite::X25519Sha256Aes128Gcm, 2, 0, T0);
    let out = h.submit(v1, T0);
    assert_eq!(out.rejected, Some(ReasonCode::UnsupportedVersion));
    assert!(!out.logged);
    assert_eq!(h.submit(v2, T0).rejected, None);
}
