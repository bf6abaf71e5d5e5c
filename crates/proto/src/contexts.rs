//! Purpose labels (domain separation). Every signature, MAC, key derivation and attestation
//! binding in Sealbridge names one of these; the list is mirrored in `docs/crypto.md`.
//!
//! Invariants (tested below): no two labels are equal, none is a prefix of another, all are
//! printable ASCII (so they can be carried as CBOR text strings) and shorter than 256 bytes.

/// Sender signature inside an envelope plaintext: signed structure
/// `["sealbridge/v1/envelope-sender", protected bstr, payload bstr]`.
pub const ENVELOPE_SENDER_CONTEXT: &[u8] = b"sealbridge/v1/envelope-sender";
/// COSE_Sign1 `external_aad` of an envelope receipt.
pub const RECEIPT_CONTEXT: &[u8] = b"sealbridge/v1/receipt";
/// HKDF salt of sealing-at-rest key derivation.
pub const SEAL_AT_REST_CONTEXT: &[u8] = b"sealbridge/v1/seal-at-rest";
/// Signature over an epoch KEM key announcement.
pub const EPOCH_ANNOUNCEMENT_CONTEXT: &[u8] = b"sealbridge/v1/epoch-announcement";
/// Prefix of the attestation `report_data` hash (DESIGN §3).
pub const REPORT_DATA_CONTEXT: &[u8] = b"sealbridge/v1/report-data";
/// Prefix of the enclave policy hash (the statements' `policyHash`).
pub const POLICY_CONTEXT: &[u8] = b"sealbridge/v1/policy";
/// Prefix of the program id hash (measurement ‖ policy hash).
pub const PROGRAM_ID_CONTEXT: &[u8] = b"sealbridge/v1/program-id";
/// Prefix of the simulated TEE's measurement (INSECURE: development only).
pub const SIM_MEASUREMENT_CONTEXT: &[u8] = b"sealbridge/v1/INSECURE-simulated-measurement";
/// Signature of a simulated quote (INSECURE: the signing key is public).
pub const SIM_QUOTE_CONTEXT: &[u8] = b"sealbridge/v1/INSECURE-simulated-quote";
/// AAD prefix of sealed journal records (durable enclave, `sealbridge-enclave::persist`).
pub const JOURNAL_CONTEXT: &[u8] = b"sealbridge/v1/journal";
/// AAD prefix of sealed enclave snapshots.
pub const SNAPSHOT_CONTEXT: &[u8] = b"sealbridge/v1/snapshot";
/// HKDF info prefix of one epoch ratchet step: `ck_e' = HKDF-SHA256(ck_e, this ‖ e' u64 BE)`.
pub const EPOCH_CHAIN_NEXT_LABEL: &[u8] = b"sealbridge/v1/epoch-chain-next";
/// HKDF info deriving an epoch's X25519 KEM secret from its chain key.
pub const EPOCH_KEM_LABEL: &[u8] = b"sealbridge/v1/epoch-kem";
/// HKDF info deriving an epoch's input key (AES-256-GCM, inputs at rest) from its chain key.
pub const EPOCH_INPUT_KEY_LABEL: &[u8] = b"sealbridge/v1/epoch-input-key";
/// AAD prefix of an accepted input sealed under its epoch's input key in a journal record.
pub const SEALED_INPUT_CONTEXT: &[u8] = b"sealbridge/v1/sealed-input";
/// HKDF info deriving an epoch's X-Wing KEM seed (its 32-byte decapsulation key) from its chain
/// key (issue 12; not `…/epoch-kem-xwing`, which would extend `EPOCH_KEM_LABEL`).
pub const EPOCH_XWING_KEM_LABEL: &[u8] = b"sealbridge/v1/epoch-xwing-kem";
/// Signature over an epoch's X-Wing KEM key announcement (with the suite lifecycle).
pub const XWING_ANNOUNCEMENT_CONTEXT: &[u8] = b"sealbridge/v1/xwing-epoch-announcement";
/// The simulated TEE root's seed is SHA-256 of this public label. Not a secret.
pub const SIM_ROOT_SEED_LABEL: &[u8] = b"sealbridge/v1/INSECURE-simulated-tee-root";
/// HPKE `info` prefix of a handover package: the sealing root sealed to an attested successor
/// (issue 12), followed by predecessor address, successor address and handover sequence.
pub const HANDOVER_CONTEXT: &[u8] = b"sealbridge/v1/handover";

// Key custody across keyholders (issue 12 part 3; docs/PROTOCOL.md "Key custody").

/// Prefix of a sealing root's id: `keccak256(this ‖ root)`. Shares carry it, so a recombined
/// root is checked and a bad share detected.
pub const ROOT_ID_CONTEXT: &[u8] = b"sealbridge/v1/root-id";
/// HPKE `info` prefix of a share sealed by the enclave to a keyholder (then the deployment).
pub const KEYHOLDER_SHARE_CONTEXT: &[u8] = b"sealbridge/v1/keyholder-share";
/// Prefix of the attestation `report_data` of a recovering enclave's request to a keyholder:
/// binds its one-time recovery key, the deployment and the keyholder's challenge.
pub const KEYHOLDER_REQUEST_CONTEXT: &[u8] = b"sealbridge/v1/keyholder-request";
/// Prefix of the attestation `report_data` of a dealing (the enclave's new shares): binds the
/// digest of every sealed share, the deployment and the generation, so that a keyholder stores
/// only shares a genuine enclave dealt (a host cannot substitute a root it knows).
pub const KEYHOLDER_DEAL_CONTEXT: &[u8] = b"sealbridge/v1/keyholder-deal";
/// HPKE `info` prefix of a share a keyholder releases to a recovery key (then the deployment).
pub const KEYHOLDER_RELEASE_CONTEXT: &[u8] = b"sealbridge/v1/keyholder-release";
/// Sealing-at-rest purpose of a keyholder's own secrets (its HPKE key, the shares it holds).
pub const KEYHOLDER_AT_REST_LABEL: &[u8] = b"sealbridge/v1/keyholder-at-rest";

/// HKDF salt expanding Gramine's 16-byte SGX sealing key (MRENCLAVE policy) to the sealing root
/// (`sealbridge enclave --tee sgx`, issue 14).
pub const SGX_SEALING_ROOT_LABEL: &[u8] = b"sealbridge/v1/sgx-sealing-root";
/// HKDF salt expanding the SEV-SNP derived key (`SNP_GET_DERIVED_KEY`) to the sealing root.
pub const SNP_SEALING_ROOT_LABEL: &[u8] = b"sealbridge/v1/snp-sealing-root";
/// HMAC purpose of the host's proof of the boundary host key on a TCP/vsock link
/// (`HMAC(k, this ‖ Ne ‖ Nh)`, `sealbridge-core` `link::auth`).
pub const BOUNDARY_HOST_CONTEXT: &[u8] = b"sealbridge/v1/boundary-host";
/// HMAC purpose of the enclave's answering proof (`HMAC(k, this ‖ Nh ‖ Ne)`).
pub const BOUNDARY_ENCLAVE_CONTEXT: &[u8] = b"sealbridge/v1/boundary-enclave";

// Transparency-log checkpoints are C2SP signed notes: their domain separation is the note format
// itself (key name = log origin, key id), so they use no label here, by design.

/// Every label above.
pub const ALL: &[&[u8]] = &[
    ENVELOPE_SENDER_CONTEXT,
    RECEIPT_CONTEXT,
    SEAL_AT_REST_CONTEXT,
    EPOCH_ANNOUNCEMENT_CONTEXT,
    REPORT_DATA_CONTEXT,
    POLICY_CONTEXT,
    PROGRAM_ID_CONTEXT,
    SIM_MEASUREMENT_CONTEXT,
    SIM_QUOTE_CONTEXT,
    SIM_ROOT_SEED_LABEL,
    JOURNAL_CONTEXT,
    SNAPSHOT_CONTEXT,
    EPOCH_CHAIN_NEXT_LABEL,
    EPOCH_KEM_LABEL,
    EPOCH_INPUT_KEY_LABEL,
    SEALED_INPUT_CONTEXT,
    EPOCH_XWING_KEM_LABEL,
    XWING_ANNOUNCEMENT_CONTEXT,
    ROOT_ID_CONTEXT,
    KEYHOLDER_SHARE_CONTEXT,
    KEYHOLDER_REQUEST_CONTEXT,
    KEYHOLDER_DEAL_CONTEXT,
    KEYHOLDER_RELEASE_CONTEXT,
    KEYHOLDER_AT_REST_LABEL,
    HANDOVER_CONTEXT,
    SGX_SEALING_ROOT_LABEL,
    SNP_SEALING_ROOT_LABEL,
    BOUNDARY_HOST_CONTEXT,
    BOUNDARY_ENCLAVE_CONTEXT,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_distinct_and_prefix_free() {
        for (i, a) in ALL.iter().enumerate() {
            for (j, b) in ALL.iter().enumerate() {
                if i != j {
                    assert_ne!(a, b, "duplicate label");
                    assert!(!b.starts_with(a), "{a:?} is a prefix of {b:?}");
                }
            }
        }
    }

    #[test]
    fn labels_are_short_printable_ascii() {
        for l in ALL {
            assert!(l.len() < 256);
            assert!(l.starts_with(b"sealbridge/v1/"));
            assert!(l.iter().all(|c| (0x21..0x7f).contains(c)));
        }
    }
}
