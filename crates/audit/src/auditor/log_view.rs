//! One pass over the log: decode, verify signatures, cut batches.

use super::*;

pub(super) fn walk_log(
    entries: impl IntoIterator<Item = Vec<u8>>,
    keep: &BTreeSet<u64>,
    t: &mut Tally,
    domain: &alloy_sol_types::Eip712Domain,
) -> Result<LogView, Error> {
    let mut v = LogView::default();
    let mut key: Option<KeyBundle> = None;
    let mut policy: Option<B256> = None;
    let mut batch: Vec<BatchReceipt> = Vec::new();
    // Grants logged since the last statement entry: the exits of the next statement.
    let mut batch_exits: BTreeMap<(Address, Address), u128> = BTreeMap::new();
    let mut last_request_id = 0u64;
    // The last request decided at the last cut (a statement that closed the batch): a
    // heartbeat settles no decision made since — it carries this marker, and the open batch
    // (receipts, grants, decisions) stays open across it (review: every statement entry was
    // taken for a cut, so an honest log with a heartbeat while inputs waited failed).
    let mut decided_at_cut = 0u64;
    // The sequence of the last statement (or handover) entry (0 before the first).
    let mut last_sequence = 0u64;
    // The state root after it (a handover keeps it).
    let mut last_root = B256::ZERO;
    // A handover logged and not yet taken over by its successor: (its position in
    // `v.handovers`, its log index).
    let mut handing: Option<(usize, u64)> = None;
    for (index, raw) in (0u64..).zip(entries) {
        v.tree.append(leaf_hash(&raw))?;
        if keep.contains(&index) {
            v.kept.insert(index, raw.clone());
        }
        let bytes = &raw;
        let entry = match entries::decode(bytes) {
            Ok(e) => e,
            Err(why) => {
                t.fail(format!("entry {index} does not decode: {why}"));
                continue;
            }
        };
        // After a handover the handing-over enclave changes nothing (issue 12): until its
        // successor's `HandoverAccepted`, only session starts, rejection summaries and renewals
        // of statements it signed before (they settle before the handover) may follow.
        if let Some((_, at)) = handing
            && !matches!(
                entry,
                Entry::HandoverAccepted(_)
                    | Entry::SessionStart(_)
                    | Entry::RejectionSummary(_)
                    | Entry::StatementRenewal { .. }
                    // The successor was lost before its takeover reached the settled log
                    // (issue 12): the enclave resumed from the chain stands right past it.
                    | Entry::Resumed(_)
            )
        {
            t.fail(format!(
                "entry {index}: a {} after the handover at entry {at}, before its successor took over: the handing-over enclave changes nothing after a handover",
                entry.kind()
            ));
            continue;
        }
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
                // A policy change is adopted at a statement boundary (PROTOCOL §14): every
                // input accepted before it is in a statement under the old policy.
                t.expect(batch.is_empty(), || {
                    format!(
                        "entry {index}: policy change with {} accepted input(s) not yet in a \
                         statement",
                        batch.len()
                    )
                });
                policy = Some(hash);
            }
            Entry::EpochRotation(b) => match key {
                None => t.fail(format!(
                    "entry {index}: epoch announcement before any key announcement"
                )),
                Some(k) => {
                    // The X25519 announcement, then (issue 12) the same epoch's X-Wing
                    // announcement with the suite lifecycle; a log of an earlier version has
                    // the first only.
                    let signer = Ed25519PublicKey::from_bytes(k.ed25519);
                    let (x25519, xwing) = b.split_at(b.len().min(ANNOUNCEMENT_LEN));
                    let epoch = EpochAnnouncement::verify(x25519, &signer)
                        .ok()
                        .filter(|a| a.instance == k.instance_id());
                    t.expect(epoch.is_some(), || format!("entry {index}: epoch announcement does not verify under the announced key"));
                    if let (Some(epoch), false) = (epoch, xwing.is_empty()) {
                        let ok = XWingAnnouncement::verify(xwing, &signer)
                            .is_ok_and(|x| x.instance == epoch.instance && x.epoch == epoch.epoch);
                        t.expect(ok, || format!("entry {index}: the X-Wing announcement does not verify under the announced key for the same epoch"));
                    }
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
                last_sequence = seq;
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
                last_root = statement.newStateRoot;
                // A heartbeat: no inputs, and the effects hash of no effects with the marker of
                // the last cut; it leaves an open batch open. (With nothing open a heartbeat and
                // an empty cut are the same.)
                let open = !batch.is_empty()
                    || !batch_exits.is_empty()
                    || last_request_id != decided_at_cut;
                let heartbeat_hash = sealbridge_proto::eip712::effects_hash(
                    &[],
                    &(decided_at_cut > 0)
                        .then(|| sealbridge_proto::eip712::request_marker(decided_at_cut))
                        .into_iter()
                        .collect::<Vec<_>>(),
                );
                let heartbeat =
                    open && statement.inputCount == 0 && statement.effectsHash == heartbeat_hash;
                let (stmt_batch, stmt_exits) = if heartbeat {
                    (Vec::new(), BTreeMap::new())
                } else {
                    decided_at_cut = last_request_id;
                    (std::mem::take(&mut batch), std::mem::take(&mut batch_exits))
                };
                v.statements.entry(seq).or_insert(LoggedStatement {
                    index,
                    statement,
                    signer,
                    batch: stmt_batch,
                    exits: stmt_exits,
                    renewals: Vec::new(),
                    deposits_before: v.deposits.len(),
                });
            }
            // Unlogged rejections, counted (issue 11): nothing to check against other entries.
            Entry::RejectionSummary(_) => t.ok(),
            // A deposit the host reported (issue 13): matched with the chain by `deposits`, and
            // credited into the escrow `effects` recomputes.
            Entry::Deposit(d) => {
                t.ok();
                v.deposits.push((index, d));
            }
            // A session went live (issue 11): where it says it did.
            Entry::SessionStart(e) => {
                t.expect(e.log_size == index && e.last_sequence == last_sequence, || {
                    format!(
                        "entry {index}: session start says log size {} and last statement {} (want {index}, {last_sequence})",
                        e.log_size, e.last_sequence
                    )
                });
                v.sessions
                    .push(crate::sessions::SessionReport::new(index, &e));
            }
            // A handover (issue 12): to the sequence after the last statement, from its root, by
            // the announced enclave to another one.
            Entry::Handover(h) => {
                let ok = key.is_some_and(|k| k.address != h.successor)
                    && h.sequence == last_sequence.saturating_add(1)
                    && h.state_root == last_root;
                t.expect(ok, || {
                    format!(
                        "entry {index}: handover {} to {} from root {} (want sequence {}, root {last_root}, a successor other than the announced enclave {:?})",
                        h.sequence,
                        h.successor,
                        h.state_root,
                        last_sequence.saturating_add(1),
                        key.map(|k| k.address)
                    )
                });
                last_sequence = h.sequence;
                v.handovers.push(LoggedHandover {
                    index,
                    entry: h,
                    predecessor: key,
                });
                handing = Some((v.handovers.len().saturating_sub(1), index));
            }
            // The successor takes over the handover pending, with the keys it named: from here
            // on receipts, statements and checkpoints are its own.
            Entry::HandoverAccepted(a) => {
                let Some((i, at)) = handing else {
                    t.fail(format!(
                        "entry {index}: a successor took over sequence {} with no handover pending",
                        a.sequence
                    ));
                    continue;
                };
                let Some(h) = v.handovers.get(i) else {
                    continue;
                };
                let ok = a.sequence == h.entry.sequence
                    && h.predecessor.is_some_and(|p| {
                        p.address == a.predecessor && p.ed25519 == a.predecessor_ed25519
                    })
                    && a.successor.address == h.entry.successor
                    && a.successor.ed25519 == h.entry.successor_ed25519
                    && a.measurement == h.entry.measurement;
                if t.expect(ok, || {
                    format!(
                        "entry {index}: the successor's takeover (sequence {}, {} with measurement {}, from {}) is not the handover at entry {at} (sequence {}, {} with measurement {}, from {:?}) or names other keys",
                        a.sequence,
                        a.successor.address,
                        a.measurement,
                        a.predecessor,
                        h.entry.sequence,
                        h.entry.successor,
                        h.entry.measurement,
                        h.predecessor.map(|p| p.address)
                    )
                }) {
                    // Its key bundle is announced here: its registration must bind it.
                    v.bundles.push((a.successor, a.measurement));
                    key = Some(a.successor);
                    handing = None;
                }
            }
            // A fresh enclave resumed from the chain after the enclave and its data were lost
            // (issue 12): it sits right past the settled prefix, at or above the last statement
            // logged before; the open batch and grants before it are void (never settled), and
            // the key announcement that follows is the successor's.
            Entry::Resumed(r) => {
                t.expect(
                    r.settled_log_size == index && r.sequence >= last_sequence,
                    || {
                        format!(
                            "entry {index}: resumed at settled log size {} after statement {} (want {index}, at least {last_sequence})",
                            r.settled_log_size, r.sequence
                        )
                    },
                );
                // The settled prefix ends before the last settled statement's own entry (a
                // statement anchors the log before itself): the requests decided in its batch
                // settled with it if it was a cut, none of them if it was a heartbeat (the open
                // batch stays open). So the chain's requestsDecided at the resumption is one of
                // the two; which one, the settled statement says (`check_voided_statement`). A
                // host that inflates it makes the successor skip undecided requests
                // (THREAT-MODEL, issue 12).
                t.expect(
                    r.requests_decided == last_request_id
                        || r.requests_decided == decided_at_cut,
                    || {
                        format!(
                            "entry {index}: resumed with requests_decided {}, but the settled log decided withdrawal requests up to {last_request_id} ({decided_at_cut} at the last cut; the successor would skip or repeat requests)",
                            r.requests_decided
                        )
                    },
                );
                v.resumed.push(LoggedResumed {
                    index,
                    entry: r,
                    void_batch: std::mem::take(&mut batch),
                    void_exits: std::mem::take(&mut batch_exits),
                    decided: (decided_at_cut, last_request_id),
                });
                batch.clear();
                batch_exits.clear();
                last_sequence = r.sequence;
                last_root = r.state_root;
                last_request_id = r.requests_decided;
                decided_at_cut = r.requests_decided;
                key = None;
                handing = None;
            }
            Entry::ExitRequest(e) => {
                // Requests are decided in the contract's id order, each once.
                let expected = last_request_id.saturating_add(1);
                if t.expect(e.request_id == expected, || {
                    format!(
                        "entry {index}: exit request {} where request {expected} is next (requests dropped, repeated or reordered)",
                        e.request_id
                    )
                }) {
                    last_request_id = e.request_id;
                }
                if e.outcome.granted > 0 {
                    let g = batch_exits.entry((e.token, e.account)).or_insert(0);
                    *g = g.saturating_add(e.outcome.granted);
                }
                v.exit_requests.push((index, e));
            }
            // Not a statement for batches, counts or the logSize rule: it re-signs one.
            Entry::StatementRenewal {
                statement,
                signature,
            } => {
                let signer = entries::recover(&statement.digest(domain), &signature);
                match renewal_problem(&statement, signer, key.as_ref(), &v.statements) {
                    Some(why) => t.fail(format!(
                        "entry {index}: renewal of statement {}: {why}",
                        statement.sequence
                    )),
                    None => {
                        t.ok();
                        if let Some(s) = v.statements.get_mut(&statement.sequence) {
                            s.renewals.push(LoggedRenewal {
                                index,
                                statement,
                                signer,
                            });
                        }
                    }
                }
            }
        }
    }
    v.pending = batch.len() as u64;
    v.pending_exits = batch_exits.len() as u64;
    Ok(v)
}

/// Why a statement renewal entry is not one the enclave could have logged, if it is not: it must
/// be signed by the last announced key (which signed the original: the enclave renews only its
/// own signatures), follow a statement entry of its sequence, equal it in every field but
/// `notBefore`/`notAfter`, end later than it, and not earlier than the renewal of it before.
fn renewal_problem(
    renewal: &Statement,
    signer: Option<Address>,
    key: Option<&KeyBundle>,
    statements: &BTreeMap<u64, LoggedStatement>,
) -> Option<String> {
    let seq = renewal.sequence;
    let announced = key.map(|k| k.address);
    if announced.is_none() || signer != announced {
        return Some(format!(
            "signed by {signer:?}, not the announced enclave {announced:?}"
        ));
    }
    let Some(original) = statements.get(&seq) else {
        return Some(format!("no statement entry of sequence {seq} before it"));
    };
    let o = &original.statement;
    if original.signer != signer {
        return Some(format!(
            "the statement at entry {} was signed by {:?}, not by the renewing key {signer:?}",
            original.index, original.signer
        ));
    }
    let window_only = Statement {
        notBefore: o.notBefore,
        notAfter: o.notAfter,
        ..renewal.clone()
    };
    if &window_only != o {
        return Some(format!(
            "differs from the statement at entry {} in more than notBefore/notAfter",
            original.index
        ));
    }
    if renewal.notAfter <= o.notAfter {
        return Some(format!(
            "notAfter {} is not later than {}, that of the statement at entry {}",
            renewal.notAfter, o.notAfter, original.index
        ));
    }
    // The enclave's clock never goes back, so its renewals' windows never end earlier than an
    // earlier renewal's; the same renewal may be logged twice (the host asked twice at one time).
    if let Some(r) = original.renewals.last()
        && renewal.notAfter < r.statement.notAfter
    {
        return Some(format!(
            "notAfter {} is earlier than {}, that of the renewal at entry {}",
            renewal.notAfter, r.statement.notAfter, r.index
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealbridge_enclave::log_entry::{self, EntryKind};

    fn resumed(requests_decided: u64) -> Vec<u8> {
        let r = ResumedEntry {
            sequence: 0,
            settled_log_size: 0,
            lost_log_size: 0,
            requests_decided,
            block: 7,
            previous: Address::ZERO,
            previous_ed25519: [0; 32],
            state_root: B256::ZERO,
            balances_root: B256::ZERO,
        };
        log_entry::encode(EntryKind::Resumed, &r.encode())
    }

    fn walk(entries: Vec<Vec<u8>>) -> (Tally, LogView) {
        let mut t = Tally::default();
        let domain = settlement_domain(31337, Address::repeat_byte(5));
        let v = walk_log(entries, &BTreeSet::new(), &mut t, &domain).unwrap();
        (t, v)
    }

    #[test]
    fn a_resumed_entry_names_the_requests_its_settled_prefix_decided() {
        let (t, v) = walk(vec![resumed(0)]);
        assert_eq!((t.failures, v.resumed.len()), (0, 1), "{:?}", t.first);
        // A host that inflated requests_decided: the successor would skip request 1.
        let (t, _) = walk(vec![resumed(1)]);
        assert_eq!(t.failures, 1);
        assert!(
            t.first.as_deref().is_some_and(
                |f| f.contains("resumed with requests_decided 1") && f.contains("up to 0")
            ),
            "{:?}",
            t.first
        );
    }
}

#[cfg(test)]
mod heartbeat_tests {
    use alloy_primitives::{Address, B256};
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;
    use sealbridge_enclave::{
        Enclave, EnclavePolicy, SettlementTarget,
        boundary::{ChainEvent, Request, Response},
        epochs::EpochAnnouncement,
    };
    use sealbridge_log::merkle_root;
    use sealbridge_programs::netting::{Netting, NettingConfig, Obligation, Participant};
    use sealbridge_proto::{EnvelopeHeader, Nonce, ProgramId, SenderId, TraceId};
    use sealbridge_seal::keys::{Ed25519PublicKey, Ed25519SigningKey};

    use super::*;

    const T0: u64 = 1_800_000_000;
    const TARGET: SettlementTarget = SettlementTarget {
        chain_id: 31337,
        settlement: Address::repeat_byte(0x5e),
    };

    /// Review HIGH: a heartbeat while an input waits for the anonymity set leaves the open
    /// batch open, but the log walk took every statement entry for a cut — the heartbeat got the
    /// waiting receipt and the next cut lost it, so an honest log failed. Now the heartbeat is
    /// told apart by its effects hash (no effects, the last cut's marker) and the receipt counts
    /// in the cut that settles it.
    #[test]
    fn a_heartbeat_while_inputs_wait_leaves_the_open_batch_to_the_next_cut() {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let token = Address::repeat_byte(0xee);
        let people: Vec<(Ed25519SigningKey, Address)> = (1..=2u8)
            .map(|i| {
                (
                    Ed25519SigningKey::generate(&mut rng),
                    Address::repeat_byte(i),
                )
            })
            .collect();
        let policy = EnclavePolicy::new(
            NettingConfig {
                participants: people
                    .iter()
                    .map(|(k, a)| Participant {
                        sender: SenderId::new(*k.public().as_bytes()),
                        account: *a,
                    })
                    .collect(),
                tokens: vec![token],
            },
            4,
        )
        .with_anonymity_set(2, 1, 0);
        let mut e = Enclave::boot(
            policy.clone(),
            Netting::new(&policy.netting),
            TARGET,
            Box::new(ChaCha20Rng::seed_from_u64(12)),
            T0,
        )
        .unwrap();
        for (_, account) in &people {
            let r = e.handle(Request::Chain(ChainEvent::Deposit {
                account: *account,
                token,
                amount: 1_000,
            }));
            assert_eq!(r, Response::Ack);
        }
        let Response::Description(d) = e.handle(Request::Describe) else {
            panic!()
        };
        let ann = EpochAnnouncement::verify(
            &d.epoch_announcement,
            &Ed25519PublicKey::from_bytes(d.key_bundle.ed25519),
        )
        .unwrap();
        let mut submit = |e: &mut Enclave<Netting>, now: u64, n: u8| {
            let header = EnvelopeHeader::new(
                ann.instance,
                ann.epoch,
                ProgramId::new(d.program_id.0),
                Nonce::new([n; 16]),
                now + 600,
                TraceId::new([n; 16]),
            );
            let ob = Obligation {
                to: people[1].1,
                token,
                amount: 5,
            };
            let env = sealbridge_seal::envelope::seal(
                &header,
                &ann.public_key,
                &people[0].0,
                &ob.encode(),
                &mut rng,
            )
            .unwrap();
            match e.handle(Request::Submit { envelope: env, now }) {
                Response::Submitted(o) => assert_eq!(o.rejected, None),
                other => panic!("{other:?}"),
            }
        };
        submit(&mut e, T0 + 1, 1);
        let Response::Batch(Some(h)) = e.handle(Request::Heartbeat { now: T0 + 2 }) else {
            panic!("heartbeat")
        };
        assert_eq!(h.statement.inputCount, 0, "a heartbeat, the input waits");
        submit(&mut e, T0 + 3, 2);
        let Response::Batch(Some(cut)) = e.handle(Request::CutBatch { now: T0 + 4 }) else {
            panic!("cut")
        };
        assert_eq!(cut.statement.inputCount, 2);
        let Response::LogEntries { entries, .. } = e.handle(Request::LogEntries) else {
            panic!()
        };
        let mut t = Tally::default();
        let domain =
            sealbridge_proto::eip712::settlement_domain(TARGET.chain_id, TARGET.settlement);
        let v = walk_log(entries, &BTreeSet::new(), &mut t, &domain).unwrap();
        assert_eq!(t.failures, 0, "{:?}", t.first);
        let hb = v.statements.get(&h.statement.sequence).unwrap();
        assert!(hb.batch.is_empty() && hb.exits.is_empty());
        let c = v.statements.get(&cut.statement.sequence).unwrap();
        let leaves: Vec<Hash> = c.batch.iter().map(|b| b.receipt_leaf).collect();
        assert_eq!(leaves.len(), 2);
        assert_eq!(B256::from(merkle_root(&leaves).0), cut.statement.inputsRoot);
    }
}
