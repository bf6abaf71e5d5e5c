//! Conversions between the `sealbridge-proto` EIP-712 structs (what the enclave signs) and the
//! ABI-generated bindings (what the contracts take). Field for field; the differential tests
//! check that both sides hash to the digest the deployed bytecode computes.

use sealbridge_proto::eip712 as proto;

use crate::bindings::{AttestationResult, Effect, Exit, Handover, Statement};

impl From<&proto::Statement> for Statement {
    fn from(s: &proto::Statement) -> Self {
        Self {
            sequence: s.sequence,
            prevStateRoot: s.prevStateRoot,
            newStateRoot: s.newStateRoot,
            inputsRoot: s.inputsRoot,
            inputCount: s.inputCount,
            logSize: s.logSize,
            logRoot: s.logRoot,
            policyHash: s.policyHash,
            effectsHash: s.effectsHash,
            notBefore: s.notBefore,
            notAfter: s.notAfter,
        }
    }
}

impl From<&Statement> for proto::Statement {
    fn from(s: &Statement) -> Self {
        Self {
            sequence: s.sequence,
            prevStateRoot: s.prevStateRoot,
            newStateRoot: s.newStateRoot,
            inputsRoot: s.inputsRoot,
            inputCount: s.inputCount,
            logSize: s.logSize,
            logRoot: s.logRoot,
            policyHash: s.policyHash,
            effectsHash: s.effectsHash,
            notBefore: s.notBefore,
            notAfter: s.notAfter,
        }
    }
}

impl From<&proto::Effect> for Effect {
    fn from(e: &proto::Effect) -> Self {
        Self {
            account: e.account,
            token: e.token,
            delta: e.delta,
        }
    }
}

impl From<&Effect> for proto::Effect {
    fn from(e: &Effect) -> Self {
        Self {
            account: e.account,
            token: e.token,
            delta: e.delta,
        }
    }
}

impl From<&proto::Exit> for Exit {
    fn from(e: &proto::Exit) -> Self {
        Self {
            account: e.account,
            token: e.token,
            amount: e.amount,
        }
    }
}

impl From<&Exit> for proto::Exit {
    fn from(e: &Exit) -> Self {
        Self {
            account: e.account,
            token: e.token,
            amount: e.amount,
        }
    }
}

impl From<&proto::AttestationResult> for AttestationResult {
    fn from(r: &proto::AttestationResult) -> Self {
        Self {
            tee: r.tee,
            measurement: r.measurement,
            tcbStatus: r.tcbStatus,
            enclave: r.enclave,
            ed25519Key: r.ed25519Key,
            keyBundleHash: r.keyBundleHash,
            evidenceHash: r.evidenceHash,
            advisoryHash: r.advisoryHash,
            challengeBlock: r.challengeBlock,
            challenge: r.challenge,
            issuedAt: r.issuedAt,
            expiresAt: r.expiresAt,
        }
    }
}

impl From<&AttestationResult> for proto::AttestationResult {
    fn from(r: &AttestationResult) -> Self {
        Self {
            tee: r.tee,
            measurement: r.measurement,
            tcbStatus: r.tcbStatus,
            enclave: r.enclave,
            ed25519Key: r.ed25519Key,
            keyBundleHash: r.keyBundleHash,
            evidenceHash: r.evidenceHash,
            advisoryHash: r.advisoryHash,
            challengeBlock: r.challengeBlock,
            challenge: r.challenge,
            issuedAt: r.issuedAt,
            expiresAt: r.expiresAt,
        }
    }
}

impl From<&proto::Handover> for Handover {
    fn from(h: &proto::Handover) -> Self {
        Self {
            sequence: h.sequence,
            stateRoot: h.stateRoot,
            logSize: h.logSize,
            logRoot: h.logRoot,
            policyHash: h.policyHash,
            successor: h.successor,
            successorMeasurement: h.successorMeasurement,
            successorResultHash: h.successorResultHash,
            notBefore: h.notBefore,
            notAfter: h.notAfter,
        }
    }
}

impl From<&Handover> for proto::Handover {
    fn from(h: &Handover) -> Self {
        Self {
            sequence: h.sequence,
            stateRoot: h.stateRoot,
            logSize: h.logSize,
            logRoot: h.logRoot,
            policyHash: h.policyHash,
            successor: h.successor,
            successorMeasurement: h.successorMeasurement,
            successorResultHash: h.successorResultHash,
            notBefore: h.notBefore,
            notAfter: h.notAfter,
        }
    }
}

/// Convert a slice of proto effects (e.g. a statement's canonical effects) to binding effects.
pub fn effects_from_proto(effects: &[proto::Effect]) -> Vec<Effect> {
    effects.iter().map(Effect::from).collect()
}

/// The ABI exits of a statement from the enclave's (proto) exits.
pub fn exits_from_proto(exits: &[proto::Exit]) -> Vec<Exit> {
    exits.iter().map(Exit::from).collect()
}
