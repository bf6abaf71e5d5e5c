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
/// Signature over a transparency-log checkpoint.
pub const CHECKPOINT_CONTEXT: &[u8] = b"sealbridge/v1/checkpoint";
/// Prefix of the attestation `report_data` hash (DESIGN §3).
pub const REPORT_DATA_CONTEXT: &[u8] = b"sealbridge/v1/report-data";
/// Hash of the canonical instance key bundle.
pub const KEY_BUNDLE_CONTEXT: &[u8] = b"sealbridge/v1/key-bundle";

/// Every label above.
pub const ALL: &[&[u8]] = &[
    ENVELOPE_SENDER_CONTEXT,
    RECEIPT_CONTEXT,
    SEAL_AT_REST_CONTEXT,
    EPOCH_ANNOUNCEMENT_CONTEXT,
    CHECKPOINT_CONTEXT,
    REPORT_DATA_CONTEXT,
    KEY_BUNDLE_CONTEXT,
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
