//! One pass over the log: decode, verify signatures, cut batches.

use super::*;

pub(super) fn walk_log(
    entries: Vec<Vec<u8>>,
    t: &mut Tally,
    domain: &alloy_sol_types::Eip712Domain,
) -> LogView {
    let mut v = LogView::default();
    let mut key: Option<KeyBundle> = None;
    let mut policy: Option<B256> = None;
    let mut batch: Vec<BatchReceipt> = Vec::new();
    for (index, bytes) in (0u64..).zip(&entries) {
        let entry = match entries::decode(bytes) {
            Ok(e) => e,
            Err(why) => {
                t.fail(format!("entry {index} does not decode: {why}"));
                continue;
            }
        };
        match entry {
            Entry::KeyAnnouncement {
                bundle,
                measurement,
            } => {
                t.ok();
                key = Some(bundle);
                v.bundles.push((bundle, measurement));
            }
            Entry::AttestationResult { result, signatures } => {
                t.ok();
                v.results.push((result, signatures));
            }
            Entry::PolicyChange { hash } => {
                t.ok();
                policy = Some(hash);
            }
            Entry::EpochRotation(b) => match key {
                None => t.fail(format!(
                    "entry {index}: epoch announcement before any key announcement"
                )),
                Some(k) => {
                    let ok =
                        EpochAnnouncement::verify(&b, &Ed25519PublicKey::from_bytes(k.ed25519))
                            .is_ok_and(|a| a.instance == k.instance_id());
                    t.expect(ok, || format!("entry {index}: epoch announcement does not verify under the announced key"));
                }
            },
            Entry::Receipt(b) => {
                let Some(k) = key else {
                    t.fail(format!(
                        "entry {index}: receipt before any key announcement"
                    ));
                    continue;
                };
                match Receipt::verify(&b, &Ed25519PublicKey::from_bytes(k.ed25519)) {
                    Err(e) => t.fail(format!("entry {index}: receipt does not verify: {e}")),
                    Ok(r) if r.sequence != index => t.fail(format!(
                        "entry {index}: receipt says sequence {} (entries reordered or dropped)",
                        r.sequence
                    )),
                    Ok(r) => {
                        t.ok();
                        if r.status == ReceiptStatus::Accepted {
                            v.accepted.push((index, r.envelope_id.0));
                            batch.push(BatchReceipt {
                                index,
                                envelope: r.envelope_id.0,
                                receipt_leaf: leaf_hash(&b),
                            });
                        } else {
                            v.rejected += 1;
                        }
                    }
                }
            }
            Entry::Statement {
                statement,
                signature,
            } => {
                let seq = statement.sequence;
                let signer = entries::recover(&statement.digest(domain), &signature);
                let ok = statement.logSize == index
                    && key.is_some_and(|k| Some(k.address) == signer)
                    && policy == Some(statement.policyHash)
                    && !v.statements.contains_key(&seq);
                t.expect(ok, || {
                    format!(
                        "entry {index}: statement {seq} has logSize {} / signer {signer:?} / policy {} (want {index}, the announced enclave, the logged policy, a new sequence)",
                        statement.logSize, statement.policyHash
                    )
                });
                v.statements.entry(seq).or_insert(LoggedStatement {
                    index,
                    statement,
                    signer,
                    batch: std::mem::take(&mut batch),
                });
            }
        }
    }
    v.pending = batch.len() as u64;
    v.entries = entries;
    v
}
