//! Log entries, decoded strictly (`sealbridge_enclave::log_entry`, documented in `docs/AUDIT.md`).

use alloy_primitives::{Address, B256, Signature};
use alloy_sol_types::SolValue;
use sealbridge_enclave::{
    EnclavePolicy, KeyBundle,
    log_entry::{
        self, DEPOSIT_LEN, DepositEntry, EntryKind, ExitRequestEntry, HANDOVER_ACCEPTED_LEN,
        HANDOVER_LEN, HandoverAcceptedEntry, HandoverEntry, RESUMED_LEN, RejectionSummaryEntry,
        ResumedEntry, SessionStartEntry,
    },
};
use sealbridge_proto::eip712::{AttestationResult, Statement};

/// ABI size of a `Statement` (11 static words).
pub const STATEMENT_ABI_LEN: usize = 11 * 32;
/// ABI size of an `AttestationResult` (12 static words).
pub const RESULT_ABI_LEN: usize = 12 * 32;

/// One decoded log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// Instance keys and measurement, at boot.
    KeyAnnouncement {
        /// The key bundle.
        bundle: KeyBundle,
        /// The measurement the enclave reports.
        measurement: B256,
    },
    /// The attestation result the enclave was registered under, with the verifier signatures.
    AttestationResult {
        /// The result.
        result: AttestationResult,
        /// 65-byte verifier signatures.
        signatures: Vec<[u8; 65]>,
    },
    /// A receipt (COSE_Sign1 bytes; verified by the auditor with the instance key).
    Receipt(Vec<u8>),
    /// A settlement statement and its 65-byte signature.
    Statement {
        /// The statement.
        statement: Statement,
        /// `r ‖ s ‖ v`.
        signature: [u8; 65],
    },
    /// A statement signed again with a fresh validity window (it had not settled within the
    /// first): equal to the logged statement of its sequence but for `notBefore`/`notAfter`, and
    /// anchored where that statement is. Same body as [`Entry::Statement`].
    StatementRenewal {
        /// The renewed statement.
        statement: Statement,
        /// `r ‖ s ‖ v`.
        signature: [u8; 65],
    },
    /// A signed epoch announcement.
    EpochRotation(Vec<u8>),
    /// The canonical policy bytes and their `policyHash`.
    PolicyChange {
        /// `EnclavePolicy::hash` of the bytes: the base hash `keccak256(POLICY_CONTEXT ‖ bytes)`
        /// composed with the policy's accounts and tokens.
        hash: B256,
    },
    /// A withdrawal request and the enclave's decision (amount granted, reason).
    ExitRequest(ExitRequestEntry),
    /// The rejections of a window that were not logged one by one (issue 11): counts per
    /// reason and a SHA-256 chain over their envelope ids.
    RejectionSummary(RejectionSummaryEntry),
    /// A boundary session of the enclave went live (issue 11): its random id, the journal
    /// position and log size it resumed at, and its process's journal high-water mark.
    SessionStart(SessionStartEntry),
    /// The enclave hands the deployment over to an attested successor (issue 12): the
    /// successor's address, measurement, registration (result hash) and Ed25519 key.
    Handover(HandoverEntry),
    /// The successor took the handed-over state (issue 12): from here on its keys sign.
    HandoverAccepted(HandoverAcceptedEntry),
    /// A fresh enclave resumed from the chain's settled state after the enclave and the host's
    /// data were lost (issue 12): the log from here on is the successor's (its key announcement
    /// follows); entries of the lost log from this index on are void.
    Resumed(ResumedEntry),
    /// An escrow deposit the host reported, and whether the program credited it (issue 13).
    Deposit(DepositEntry),
}

impl Entry {
    /// Short name of the kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Entry::KeyAnnouncement { .. } => "key announcement",
            Entry::AttestationResult { .. } => "attestation result",
            Entry::Receipt(_) => "receipt",
            Entry::Statement { .. } => "statement",
            Entry::StatementRenewal { .. } => "statement renewal",
            Entry::EpochRotation(_) => "epoch rotation",
            Entry::PolicyChange { .. } => "policy change",
            Entry::ExitRequest(_) => "exit request",
            Entry::RejectionSummary(_) => "rejection summary",
            Entry::SessionStart(_) => "session start",
            Entry::Handover(_) => "handover",
            Entry::HandoverAccepted(_) => "handover accepted",
            Entry::Resumed(_) => "resumed",
            Entry::Deposit(_) => "deposit",
        }
    }
}

fn sig65(b: &[u8]) -> Option<[u8; 65]> {
    b.try_into().ok()
}

/// The body of a statement or statement renewal entry: canonical ABI `Statement` (352 bytes) ‖
/// 65-byte signature, exactly.
fn statement_body(body: &[u8], what: &str) -> Result<(Statement, [u8; 65]), String> {
    if body.len() != STATEMENT_ABI_LEN + 65 {
        return Err(format!("{what} entry is {} bytes, not 417", body.len()));
    }
    let (abi, sig) = body.split_at(STATEMENT_ABI_LEN);
    let statement = Statement::abi_decode(abi).map_err(|e| e.to_string())?;
    if statement.abi_encode() != abi {
        return Err(format!("{what} is not canonical ABI"));
    }
    Ok((statement, sig65(sig).ok_or("signature length")?))
}

/// Decode one entry; the error says what is wrong.
pub fn decode(bytes: &[u8]) -> Result<Entry, String> {
    let (kind, body) = log_entry::decode(bytes).ok_or("unknown entry version or kind")?;
    match kind {
        EntryKind::KeyAnnouncement => {
            if body.len() != 57 + 32 {
                return Err("key announcement is not 89 bytes".into());
            }
            let (b, m) = body.split_at(57);
            let bundle = KeyBundle::from_bytes(b).map_err(|e| e.to_string())?;
            Ok(Entry::KeyAnnouncement {
                bundle,
                measurement: B256::from_slice(m),
            })
        }
        EntryKind::AttestationResult => {
            let (len, rest) = body.split_at_checked(4).ok_or("truncated")?;
            let len = u32::from_be_bytes(len.try_into().map_err(|_| "truncated")?) as usize;
            if len != RESULT_ABI_LEN {
                return Err(format!("attestation result is {len} bytes, not 384"));
            }
            let (abi, rest) = rest.split_at_checked(len).ok_or("truncated result")?;
            let result = AttestationResult::abi_decode(abi).map_err(|e| e.to_string())?;
            if result.abi_encode() != abi {
                return Err("attestation result is not canonical ABI".into());
            }
            let (&count, sigs) = rest.split_first().ok_or("missing signature count")?;
            if count == 0 || sigs.len() != usize::from(count) * 65 {
                return Err("signature count does not match".into());
            }
            let signatures = sigs.chunks_exact(65).filter_map(sig65).collect();
            Ok(Entry::AttestationResult { result, signatures })
        }
        EntryKind::Receipt => Ok(Entry::Receipt(body.to_vec())),
        EntryKind::Statement => {
            let (statement, signature) = statement_body(body, "statement")?;
            Ok(Entry::Statement {
                statement,
                signature,
            })
        }
        EntryKind::StatementRenewal => {
            let (statement, signature) = statement_body(body, "statement renewal")?;
            Ok(Entry::StatementRenewal {
                statement,
                signature,
            })
        }
        EntryKind::EpochRotation => Ok(Entry::EpochRotation(body.to_vec())),
        EntryKind::PolicyChange => {
            let policy = EnclavePolicy::from_bytes(body)
                .map_err(|_| "policy change entry is not canonical policy bytes")?;
            Ok(Entry::PolicyChange {
                hash: policy.hash(),
            })
        }
        EntryKind::ExitRequest => ExitRequestEntry::decode(body)
            .map(Entry::ExitRequest)
            .map_err(|e| e.to_string()),
        EntryKind::RejectionSummary => RejectionSummaryEntry::decode(body)
            .map(Entry::RejectionSummary)
            .ok_or_else(|| {
                "rejection summary is not window start, end, total, ascending non-zero counts \
                 that sum to the total, and a 32-byte digest"
                    .into()
            }),
        EntryKind::SessionStart => SessionStartEntry::decode(body)
            .map(Entry::SessionStart)
            .ok_or_else(|| format!("session start entry is {} bytes, not 48", body.len())),
        EntryKind::Handover => HandoverEntry::decode(body)
            .map(Entry::Handover)
            .ok_or_else(|| format!("handover entry is {} bytes, not {HANDOVER_LEN}", body.len())),
        EntryKind::HandoverAccepted => HandoverAcceptedEntry::decode(body)
            .map(Entry::HandoverAccepted)
            .ok_or_else(|| {
                format!(
                    "handover accepted entry is not {HANDOVER_ACCEPTED_LEN} bytes of sequence, \
                     predecessor, key bundle, measurement and a zero reserved field ({} bytes)",
                    body.len()
                )
            }),
        EntryKind::Deposit => DepositEntry::decode(body)
            .map(Entry::Deposit)
            .ok_or_else(|| {
                format!(
                    "deposit entry is not {DEPOSIT_LEN} bytes of account, token, amount and a \
                 credited flag 0 or 1 ({} bytes)",
                    body.len()
                )
            }),
        EntryKind::Resumed => ResumedEntry::decode(body)
            .map(Entry::Resumed)
            .ok_or_else(|| {
                format!(
                    "resumed entry is not {RESUMED_LEN} bytes of sequence, settled and lost log \
                     sizes (the lost one 0 or not below the settled one), requests decided, \
                     block, previous enclave and key, state and balances roots ({} bytes)",
                    body.len()
                )
            }),
    }
}

/// Recover the signer of an EIP-712 `digest` from `r ‖ s ‖ v` (v ∈ {27, 28}), refusing high-s
/// signatures as OpenZeppelin's `ECDSA` does.
pub fn recover(digest: &B256, sig: &[u8; 65]) -> Option<Address> {
    if !matches!(sig[64], 27 | 28) {
        return None;
    }
    let parsed = Signature::from_raw(sig).ok()?;
    if parsed.normalize_s().is_some() {
        return None;
    }
    parsed.recover_address_from_prehash(digest).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejection_summaries_are_accepted_and_decoded_strictly() {
        let mut body = Vec::new();
        for v in [10u64, 80, 3] {
            body.extend_from_slice(&v.to_be_bytes());
        }
        body.push(1);
        body.push(1);
        body.extend_from_slice(&3u64.to_be_bytes());
        body.extend_from_slice(&[9; 32]);
        match decode(&log_entry::encode(EntryKind::RejectionSummary, &body)) {
            Ok(Entry::RejectionSummary(s)) => {
                assert_eq!((s.window_start, s.window_end, s.total), (10, 80, 3));
                assert_eq!(s.counts, vec![(1, 3)]);
            }
            other => panic!("{other:?}"),
        }
        let err = decode(&log_entry::encode(
            EntryKind::RejectionSummary,
            &body[..body.len() - 1],
        ))
        .unwrap_err();
        assert!(err.contains("rejection summary"), "{err}");
    }

    #[test]
    fn session_starts_are_accepted_and_decoded_strictly() {
        let e = SessionStartEntry {
            session_id: [3; 16],
            resumed_at_record: 4,
            log_size: 20,
            last_sequence: 2,
            process_high_water: 9,
        };
        let body = e.encode();
        assert_eq!(
            decode(&log_entry::encode(EntryKind::SessionStart, &body)),
            Ok(Entry::SessionStart(e))
        );
        let err = decode(&log_entry::encode(
            EntryKind::SessionStart,
            &body[..body.len() - 1],
        ))
        .unwrap_err();
        assert_eq!(err, "session start entry is 47 bytes, not 48");
    }

    fn statement() -> Statement {
        Statement {
            sequence: 1,
            prevStateRoot: B256::ZERO,
            newStateRoot: B256::repeat_byte(1),
            inputsRoot: B256::repeat_byte(2),
            inputCount: 3,
            logSize: 4,
            logRoot: B256::repeat_byte(5),
            policyHash: B256::repeat_byte(6),
            effectsHash: B256::repeat_byte(7),
            notBefore: 8,
            notAfter: 9,
        }
    }

    #[test]
    fn statement_entries_decode_strictly() {
        let body = [statement().abi_encode(), vec![27; 65]].concat();
        let entry = log_entry::encode(EntryKind::Statement, &body);
        match decode(&entry).unwrap() {
            Entry::Statement {
                statement: s,
                signature,
            } => {
                assert_eq!(s, statement());
                assert_eq!(signature, [27; 65]);
            }
            other => panic!("{other:?}"),
        }
        // Truncated, extended, non-canonical (a uint64 word with high bytes set).
        let short = log_entry::encode(EntryKind::Statement, &body[..body.len() - 1]);
        assert!(decode(&short).is_err());
        let long = log_entry::encode(EntryKind::Statement, &[body.as_slice(), &[0]].concat());
        assert!(decode(&long).is_err());
        let mut bad = body.clone();
        bad[0] = 1;
        assert!(decode(&log_entry::encode(EntryKind::Statement, &bad)).is_err());
        // Unknown version and kind.
        assert!(decode(&[2, 4]).is_err());
        assert!(decode(&[1, 9]).is_err());
        assert!(decode(&[1, 0]).is_err());
        assert!(decode(&[]).is_err());
    }

    #[test]
    fn statement_renewal_entries_decode_strictly() {
        let renewed = Statement {
            notBefore: 100,
            notAfter: 200,
            ..statement()
        };
        let body = [renewed.abi_encode(), vec![28; 65]].concat();
        let entry = log_entry::encode(EntryKind::StatementRenewal, &body);
        let decoded = decode(&entry).unwrap();
        assert_eq!(decoded.kind(), "statement renewal");
        match decoded {
            Entry::StatementRenewal {
                statement: s,
                signature,
            } => {
                assert_eq!(s, renewed);
                assert_eq!(signature, [28; 65]);
            }
            other => panic!("{other:?}"),
        }
        // The same body under kind 4 is a statement, not a renewal: the kind byte decides.
        assert!(matches!(
            decode(&log_entry::encode(EntryKind::Statement, &body)),
            Ok(Entry::Statement { .. })
        ));
        // Truncated (in the signature, in the ABI, empty), extended.
        for len in [body.len() - 1, STATEMENT_ABI_LEN, 100, 0] {
            let short = log_entry::encode(EntryKind::StatementRenewal, &body[..len]);
            let err = decode(&short).unwrap_err();
            assert!(err.contains("not 417"), "{len}: {err}");
        }
        let long = log_entry::encode(
            EntryKind::StatementRenewal,
            &[body.as_slice(), &[0]].concat(),
        );
        assert!(decode(&long).is_err());
        // Non-canonical ABI: a uint64 word (sequence, notAfter) or the uint32 inputCount with
        // high bytes set.
        for at in [0, 10 * 32, 10 * 32 + 23, 4 * 32 + 27] {
            let mut bad = body.clone();
            bad[at] = 1;
            assert!(
                decode(&log_entry::encode(EntryKind::StatementRenewal, &bad)).is_err(),
                "byte {at}"
            );
        }
    }

    #[test]
    fn attestation_result_entries_decode_strictly() {
        let r = AttestationResult {
            tee: 0,
            measurement: B256::repeat_byte(1),
            tcbStatus: 0,
            enclave: Address::repeat_byte(2),
            ed25519Key: B256::repeat_byte(3),
            keyBundleHash: B256::repeat_byte(4),
            evidenceHash: B256::repeat_byte(5),
            advisoryHash: B256::ZERO,
            challengeBlock: 6,
            challenge: B256::repeat_byte(7),
            issuedAt: 8,
            expiresAt: 9,
        };
        let abi = r.abi_encode();
        let body = |count: u8, sigs: usize| {
            let mut b = (abi.len() as u32).to_be_bytes().to_vec();
            b.extend_from_slice(&abi);
            b.push(count);
            b.extend(std::iter::repeat_n(0u8, 65 * sigs));
            log_entry::encode(EntryKind::AttestationResult, &b)
        };
        match decode(&body(2, 2)).unwrap() {
            Entry::AttestationResult { result, signatures } => {
                assert_eq!(result, r);
                assert_eq!(signatures.len(), 2);
            }
            other => panic!("{other:?}"),
        }
        assert!(decode(&body(2, 1)).is_err());
        assert!(decode(&body(0, 0)).is_err());
        assert!(decode(&body(1, 2)).is_err());
        let ann = log_entry::encode(EntryKind::KeyAnnouncement, &[0; 88]);
        assert!(decode(&ann).is_err());
    }

    #[test]
    fn exit_request_entries_decode_strictly() {
        use sealbridge_enclave::{ExitOutcome, ExitReason};
        let e = ExitRequestEntry {
            request_id: 3,
            account: Address::repeat_byte(1),
            token: Address::repeat_byte(2),
            requested: 10,
            outcome: ExitOutcome {
                granted: 4,
                reason: ExitReason::Partial,
            },
        };
        let body = e.encode();
        let entry = |b: &[u8]| decode(&log_entry::encode(EntryKind::ExitRequest, b));
        let decoded = entry(&body).unwrap();
        assert_eq!(decoded.kind(), "exit request");
        assert_eq!(decoded, Entry::ExitRequest(e));
        // Truncated, extended, empty.
        for b in [&body[..80], &[body.as_slice(), &[0]].concat(), &[]] {
            assert!(entry(b).unwrap_err().contains("not 81"), "{}", b.len());
        }
        // Unknown reason; more granted than requested; a refusal that grants; a full grant
        // that is not the request.
        let with = |at: usize, v: u8| {
            let mut b = body.clone();
            b[at] = v;
            entry(&b).unwrap_err()
        };
        assert!(with(80, 6).contains("unknown exit reason"));
        assert!(with(79, 11).contains("does not fit"));
        assert!(with(80, 2).contains("does not fit"));
        assert!(with(80, 0).contains("does not fit"));
    }

    #[test]
    fn policy_change_entries_carry_the_composite_policy_hash() {
        use sealbridge_programs::netting::{NettingConfig, Participant};
        let policy = EnclavePolicy::new(
            NettingConfig {
                participants: vec![Participant {
                    sender: sealbridge_proto::SenderId::new([1; 32]),
                    account: Address::repeat_byte(1),
                }],
                tokens: vec![Address::repeat_byte(2)],
            },
            4,
        );
        let bytes = policy.to_bytes();
        assert_eq!(
            decode(&log_entry::encode(EntryKind::PolicyChange, &bytes)),
            Ok(Entry::PolicyChange {
                hash: policy.hash()
            })
        );
        assert_ne!(policy.hash(), policy.base_hash());
        let truncated = log_entry::encode(EntryKind::PolicyChange, &bytes[..bytes.len() - 1]);
        assert!(decode(&truncated).is_err());
    }

    #[test]
    fn recover_refuses_bad_v_and_high_s() {
        let key = k256::ecdsa::SigningKey::from_slice(&[3; 32]).unwrap();
        let digest = B256::repeat_byte(9);
        let sig: [u8; 65] = sealbridge_chain::eip712::sign_digest(&key, digest)
            .as_ref()
            .try_into()
            .unwrap();
        let who = Address::from_private_key(&key);
        assert_eq!(recover(&digest, &sig), Some(who));
        let mut v = sig;
        v[64] = 1;
        assert_eq!(recover(&digest, &v), None);
        // s' = n - s with v flipped recovers the same key but is high-s: refused.
        let parsed = Signature::from_raw(&sig).unwrap();
        let high = Signature::new(
            parsed.r(),
            alloy_primitives::U256::from_str_radix(
                "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141",
                16,
            )
            .unwrap()
                - parsed.s(),
            !parsed.v(),
        );
        let mut h = [0u8; 65];
        h[..64].copy_from_slice(&high.as_bytes()[..64]);
        h[64] = 27 + u8::from(high.v());
        assert_eq!(recover(&digest, &h), None);
    }
}
