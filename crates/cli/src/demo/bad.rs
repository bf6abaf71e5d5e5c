//! Deliberately bad envelopes: each kind must be rejected with its own reason code.

use rand::Rng;
use rand_core::CryptoRngCore;
use sealbridge_programs::netting::Obligation;
use sealbridge_proto::{Epoch, InstanceId, MAX_ENVELOPE_BYTES, ProgramId, ReasonCode};
use sealbridge_seal::keys::Ed25519SigningKey;

use super::client::{Addressing, seal_obligation};

/// The kinds of bad envelope the demo sends, in rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadKind {
    /// A valid envelope with one ciphertext byte flipped.
    Tampered,
    /// An envelope that was already accepted, sent again byte for byte.
    Replayed,
    /// An envelope whose `expires_at` has passed.
    Expired,
    /// An envelope sealed to an epoch the enclave never had.
    WrongEpoch,
    /// A well-formed envelope from a key that is not a participant.
    UnauthorisedSender,
    /// An envelope claiming a participant as sender, signed by someone else.
    ForgedSender,
    /// An envelope addressed to another enclave instance.
    WrongInstance,
    /// An envelope naming another program.
    WrongProgram,
    /// Bytes that are not an envelope at all.
    Malformed,
    /// More bytes than any envelope may have.
    Oversized,
}

impl BadKind {
    pub const ALL: [BadKind; 10] = [
        BadKind::Tampered,
        BadKind::Replayed,
        BadKind::Expired,
        BadKind::WrongEpoch,
        BadKind::UnauthorisedSender,
        BadKind::ForgedSender,
        BadKind::WrongInstance,
        BadKind::WrongProgram,
        BadKind::Malformed,
        BadKind::Oversized,
    ];

    /// The reason the enclave must give.
    pub fn expected(self) -> ReasonCode {
        match self {
            BadKind::Tampered => ReasonCode::Undecryptable,
            BadKind::Replayed => ReasonCode::Replayed,
            BadKind::Expired => ReasonCode::Expired,
            BadKind::WrongEpoch => ReasonCode::UnknownEpoch,
            BadKind::UnauthorisedSender => ReasonCode::UnauthorisedSender,
            BadKind::ForgedSender => ReasonCode::BadSenderSignature,
            BadKind::WrongInstance => ReasonCode::WrongInstance,
            BadKind::WrongProgram => ReasonCode::WrongProgram,
            BadKind::Malformed => ReasonCode::Malformed,
            BadKind::Oversized => ReasonCode::Oversized,
        }
    }
}

/// Build one bad envelope of `kind`. `replay` is an envelope the enclave already accepted;
/// `obligation` a plausible payload from `from`.
#[allow(clippy::too_many_arguments)]
pub fn make(
    kind: BadKind,
    addressing: &Addressing,
    from: &Ed25519SigningKey,
    obligation: &Obligation,
    replay: &[u8],
    now: u64,
    rng: &mut (impl CryptoRngCore + Rng),
) -> anyhow::Result<Vec<u8>> {
    let fresh = now + 600;
    let seal = |a: &Addressing, h, key: &Ed25519SigningKey, rng: &mut _| {
        seal_obligation(a, &h, key, obligation, rng)
    };
    Ok(match kind {
        BadKind::Tampered => {
            let h = addressing.header(rng, fresh);
            let mut env = seal(addressing, h, from, rng)?;
            // The last byte belongs to the AEAD tag of the ciphertext.
            if let Some(last) = env.last_mut() {
                *last ^= 0x01;
            }
            env
        }
        BadKind::Replayed => replay.to_vec(),
        BadKind::Expired => {
            let h = addressing.header(rng, now.saturating_sub(1));
            seal(addressing, h, from, rng)?
        }
        BadKind::WrongEpoch => {
            let mut h = addressing.header(rng, fresh);
            h.epoch = Epoch(addressing.epoch.0 + 1000);
            seal(addressing, h, from, rng)?
        }
        BadKind::UnauthorisedSender => {
            let stranger = Ed25519SigningKey::generate(rng);
            let h = addressing.header(rng, fresh);
            seal(addressing, h, &stranger, rng)?
        }
        BadKind::ForgedSender => {
            let forger = Ed25519SigningKey::generate(rng);
            let h = addressing.header(rng, fresh);
            sealbridge_seal::envelope::danger_to::seal_claiming_sender(
                &h,
                addressing.recipient(h.suite)?,
                &forger,
                from.public().sender_id(),
                &obligation.encode(),
                rng,
            )?
        }
        BadKind::WrongInstance => {
            let mut h = addressing.header(rng, fresh);
            h.instance = InstanceId::new(rng.r#gen());
            seal(addressing, h, from, rng)?
        }
        BadKind::WrongProgram => {
            let mut h = addressing.header(rng, fresh);
            h.program = ProgramId::new(rng.r#gen());
            seal(addressing, h, from, rng)?
        }
        BadKind::Malformed => {
            let mut junk = vec![0u8; 64];
            rng.fill_bytes(&mut junk);
            junk
        }
        BadKind::Oversized => vec![0u8; MAX_ENVELOPE_BYTES + 1],
    })
}
