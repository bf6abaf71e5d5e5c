//! `--export DIR`: public artifacts in formats other tools read.
//!
//! - `statements.jsonl`: per statement, the EIP-712 typed data exactly as `eth_signTypedData_v4`
//!   takes it, the 65-byte signature (0x-hex), the signer address, the digest, the effects and
//!   the exits;
//! - `receipts.jsonl`: per receipt, the COSE_Sign1 bytes (hex), envelope id, status, sequence;
//! - `enclave.json`: instance Ed25519 public key, secp256k1 address, measurement and more;
//! - for `sealbridge audit --dir DIR` (`docs/AUDIT.md`): `chain.json` (every registry and
//!   settlement event with its block, and every block's hash and timestamp), `evidence/<sha256>.json`
//!   (the evidence behind the registration) and `appraisal-policies.json` (the verifiers' policy).

use std::{fs, io::Write, path::Path};

use alloy_primitives::{Address, hex};
use anyhow::Context;
use sealbridge_audit::{
    Attestations, BlockTimes, ChainRecord, Contracts, PublishedEvidence,
    published::INSECURE_DEV_POLICY_JSON,
};
use sealbridge_chain::Chain;
use sealbridge_enclave::{
    SignedStatement,
    boundary::{Description, SubmitOutcome},
};
use sealbridge_proto::eip712::{DOMAIN_VERSION, SETTLEMENT_DOMAIN_NAME, Statement};
use serde_json::{Value, json};

/// The attestation material the auditor re-verifies: the evidence and the verifiers' policy
/// (`Policy::insecure_dev()`, in force from time 0).
pub fn attestations(evidence: &sealbridge_attest::Evidence) -> anyhow::Result<Attestations> {
    let mut a = Attestations::default();
    let published = PublishedEvidence::new(evidence, &sealbridge_attest::Collateral::None)?;
    a.evidence.insert(published.hash(), published);
    a.policies.insert(0, INSECURE_DEV_POLICY_JSON)?;
    Ok(a)
}

/// `chain.json`, `evidence/` and `appraisal-policies.json`.
pub fn write_audit_data<C: Chain + BlockTimes + sealbridge_audit::Calldata>(
    dir: &Path,
    chain: &C,
    contracts: Contracts,
    attestations: &Attestations,
) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    ChainRecord::capture(chain, contracts)?.write(&dir.join("chain.json"))?;
    attestations.write(dir)?;
    Ok(())
}

/// The `eth_signTypedData_v4` typed data of a statement.
pub fn typed_data(s: &Statement, chain_id: u64, settlement: Address) -> Value {
    json!({
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"}
            ],
            "Statement": [
                {"name": "sequence", "type": "uint64"},
                {"name": "prevStateRoot", "type": "bytes32"},
                {"name": "newStateRoot", "type": "bytes32"},
                {"name": "inputsRoot", "type": "bytes32"},
                {"name": "inputCount", "type": "uint32"},
                {"name": "logSize", "type": "uint64"},
                {"name": "logRoot", "type": "bytes32"},
                {"name": "policyHash", "type": "bytes32"},
                {"name": "effectsHash", "type": "bytes32"},
                {"name": "notBefore", "type": "uint64"},
                {"name": "notAfter", "type": "uint64"}
            ]
        },
        "primaryType": "Statement",
        "domain": {
            "name": SETTLEMENT_DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": chain_id,
            "verifyingContract": settlement.to_checksum(None),
        },
        "message": {
            "sequence": s.sequence,
            "prevStateRoot": s.prevStateRoot,
            "newStateRoot": s.newStateRoot,
            "inputsRoot": s.inputsRoot,
            "inputCount": s.inputCount,
            "logSize": s.logSize,
            "logRoot": s.logRoot,
            "policyHash": s.policyHash,
            "effectsHash": s.effectsHash,
            "notBefore": s.notBefore,
            "notAfter": s.notAfter,
        }
    })
}

pub fn write(
    dir: &Path,
    description: &Description,
    statements: &[SignedStatement],
    receipts: &[SubmitOutcome],
    chain_id: u64,
    settlement: Address,
) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut f = fs::File::create(dir.join("statements.jsonl"))?;
    for s in statements {
        let line = json!({
            "typed_data": typed_data(&s.statement, chain_id, settlement),
            "signature": format!("0x{}", hex::encode(&s.signature)),
            "signer": s.signer.to_checksum(None),
            "digest": s.digest,
            "effects": s.effects.iter().map(|e| json!({
                "account": e.account.to_checksum(None),
                "token": e.token.to_checksum(None),
                "delta": e.delta.to_string(),
            })).collect::<Vec<_>>(),
            "exits": s.exits.iter().map(|x| json!({
                "account": x.account.to_checksum(None),
                "token": x.token.to_checksum(None),
                "amount": x.amount.to_string(),
            })).collect::<Vec<_>>(),
            "receipt_sequences": s.receipt_sequences,
        });
        writeln!(f, "{line}")?;
    }
    let mut f = fs::File::create(dir.join("receipts.jsonl"))?;
    for r in receipts {
        let line = json!({
            "receipt": hex::encode(&r.receipt),
            "envelope_id": r.envelope_id,
            "sequence": r.sequence,
            "logged": r.logged,
            "status": if r.rejected.is_none() { "accepted" } else { "rejected" },
            "reason": r.rejected.map(|c| c.as_str()),
        });
        writeln!(f, "{line}")?;
    }
    let enclave = json!({
        "instance_id": description.key_bundle.instance_id(),
        "ed25519_public_key": format!("0x{}", hex::encode(description.key_bundle.ed25519)),
        "secp256k1_address": description.key_bundle.address.to_checksum(None),
        "measurement": description.measurement,
        "program_id": description.program_id,
        "policy_hash": description.policy_hash,
        "key_bundle": format!("0x{}", hex::encode(description.key_bundle.to_bytes())),
        "tee": "simulated (INSECURE)",
        "chain_id": chain_id,
        "settlement": settlement.to_checksum(None),
    });
    fs::write(
        dir.join("enclave.json"),
        serde_json::to_string_pretty(&enclave)? + "\n",
    )?;
    Ok(())
}
