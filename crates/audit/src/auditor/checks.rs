//! The checks that compare the log with the chain (`docs/AUDIT.md`).

use super::*;

#[allow(clippy::too_many_arguments)]
pub(super) fn check_registration<C: Chain + BlockTimes + ?Sized>(
    e: &sealbridge_chain::bindings::EnclaveRegistry::EnclaveRegistered,
    block: u64,
    ts: Option<u64>,
    reg: &Registry,
    view: &LogView,
    input: &AuditInput<'_, C>,
    domain: &alloy_sol_types::Eip712Domain,
    t: &mut Tally,
) -> Result<(), Error> {
    let who = e.enclave;
    let Some((result, sigs)) = view
        .results
        .iter()
        .find(|(r, _)| r.digest(domain) == e.resultHash)
    else {
        t.fail(format!(
            "registration of {who} at block {block}: its attestation result {} is not in the log",
            e.resultHash
        ));
        return Ok(());
    };
    let Some(ts) = ts else {
        t.fail(format!(
            "registration of {who}: no timestamp for block {block}"
        ));
        return Ok(());
    };
    if !t.expect(
        result.enclave == who
            && result.measurement == e.measurement
            && result.expiresAt == e.expiresAt
            && result.issuedAt <= ts
            && ts < result.expiresAt,
        || format!("registration of {who} at block {block}: the logged result does not match the event or is not valid at {ts}"),
    ) {
        return Ok(());
    }
    // Verifier threshold, as of that block.
    let digest = result.digest(domain);
    let signers: BTreeSet<Address> = sigs
        .iter()
        .filter_map(|s| entries::recover(&digest, s))
        .filter(|a| reg.verifiers.contains(a))
        .collect();
    if !t.expect(
        signers.len() as u64 >= u64::from(reg.threshold) && reg.threshold > 0,
        || {
            format!(
                "registration of {who}: {} registered verifier signature(s), threshold {}",
                signers.len(),
                reg.threshold
            )
        },
    ) {
        return Ok(());
    }
    // The challenge is the hash of one of the 256 blocks before the registration (the registry
    // refuses block 0 and older blocks; an auditor holds the chain to the same rule).
    if !t.expect(
        result.challengeBlock != 0
            && result.challengeBlock < block
            && block - result.challengeBlock <= 256,
        || {
            format!(
                "registration of {who}: challenge block {} is not one of the 256 before block {block}",
                result.challengeBlock
            )
        },
    ) {
        return Ok(());
    }
    let hash = input.chain.block_hash(result.challengeBlock)?;
    if !t.expect(hash == Some(result.challenge), || {
        format!(
            "registration of {who}: challenge is not the hash of block {}",
            result.challengeBlock
        )
    }) {
        return Ok(());
    }
    // Evidence, re-verified under the policy in force when the verifiers appraised it.
    let Some(published) = input.attestations.evidence.get(&result.evidenceHash) else {
        t.fail(format!(
            "registration of {who}: evidence {} is not published",
            result.evidenceHash
        ));
        return Ok(());
    };
    let Some(policy) = input.attestations.policies.at(result.issuedAt) else {
        t.fail(format!(
            "registration of {who}: no appraisal policy in force at {}",
            result.issuedAt
        ));
        return Ok(());
    };
    let verified = match sealbridge_attest::verify(
        &published.evidence(),
        &published.collateral(),
        result.issuedAt,
        policy,
    ) {
        Ok(v) => v,
        Err(err) => {
            t.fail(format!(
                "registration of {who}: evidence does not re-verify at {} ({}): {err}",
                result.issuedAt,
                err.rule()
            ));
            return Ok(());
        }
    };
    let cl = &verified.claims;
    let bundle = view
        .bundles
        .iter()
        .find(|(b, _)| b.hash() == result.keyBundleHash)
        .map(|(b, _)| *b);
    let binds = bundle.is_some_and(|b| {
        b.address == who
            && b.ed25519 == result.ed25519Key.0
            && cl.report_data.as_slice()
                == report_data(&b.to_bytes(), result.challenge.as_slice()).as_slice()
    });
    t.expect(
        B256::from(verified.evidence_hash) == result.evidenceHash
            && cl.tee as u8 == result.tee
            && B256::from(cl.measurement.0) == result.measurement
            && cl.tcb_status as u8 == result.tcbStatus
            && advisory_hash(&cl.advisory_ids) == result.advisoryHash
            && binds,
        || {
            format!(
                "registration of {who}: the evidence's claims or key binding differ from the result"
            )
        },
    );
    Ok(())
}

pub(super) fn check_statement(
    e: &StatementSettled,
    block: u64,
    ts: Option<u64>,
    reg: &Registry,
    logged: Option<&LoggedStatement>,
    domain: &alloy_sol_types::Eip712Domain,
    t: &mut Tally,
) {
    let seq = e.sequence;
    let Some(s) = logged else {
        t.fail(format!("settled statement {seq} is not in the log"));
        return;
    };
    // The chain settles either the statement entry itself or one of its logged renewals (same
    // statement, fresh window): the one whose digest it stored.
    let Some((st, signer)) = std::iter::once((&s.statement, s.signer))
        .chain(s.renewals.iter().map(|r| (&r.statement, r.signer)))
        .find(|(st, _)| st.digest(domain) == e.digest)
    else {
        t.fail(format!(
            "statement {seq}: the log's statement is not the one settled (digest {} on chain, {} in the log{})",
            e.digest,
            s.statement.digest(domain),
            match s.renewals.len() {
                0 => String::new(),
                n => format!(", and none of its {n} logged renewal(s) has it"),
            }
        ));
        return;
    };
    if !t.expect(
        signer == Some(e.signer)
            && s.index == e.logSize
            && st.newStateRoot == e.newStateRoot
            && st.inputsRoot == e.inputsRoot
            && st.inputCount == e.inputCount
            && st.logSize == e.logSize
            && st.logRoot == e.logRoot,
        || format!("statement {seq}: the log's statement (digest {}) is not the one settled: signer, entry index, roots, count or anchor differ from the event", e.digest),
    ) {
        return;
    }
    let Some(ts) = ts else {
        t.fail(format!("statement {seq}: no timestamp for block {block}"));
        return;
    };
    let status = match reg.enclaves.get(&e.signer) {
        None => Some("not registered"),
        Some((_, _, true)) => Some("revoked"),
        Some((_, exp, _)) if ts >= *exp => Some("expired"),
        Some((m, _, _)) => match reg.windows.get(m) {
            Some((from, until)) if *from <= ts && ts < *until => None,
            _ => Some("measurement not allowed"),
        },
    };
    t.expect(status.is_none(), || {
        format!(
            "statement {seq} at block {block} (time {ts}): signer {} {}",
            e.signer,
            status.unwrap_or_default()
        )
    });
}

/// `handovers`: a settled handover is the log's handover entry of its sequence — the same
/// successor and measurement, logged by the enclave that signed it, handing over the root the
/// chain holds — naming a successor registered (with that result hash), not revoked and
/// unexpired at its block.
pub(super) fn check_handover(
    e: &HandedOver,
    ts: Option<u64>,
    r: &Replay,
    view: &LogView,
    t: &mut Tally,
) {
    let (seq, to) = (e.sequence, e.to);
    let Some(h) = view.handovers.iter().find(|h| h.entry.sequence == seq) else {
        t.fail(format!(
            "handover {seq} to {to} settled on chain but is not in the log"
        ));
        return;
    };
    let by = h.predecessor.map(|k| k.address);
    if !t.expect(
        h.entry.successor == to
            && h.entry.measurement == e.measurement
            && by == Some(e.from)
            && h.entry.state_root == r.last_root,
        || {
            format!(
                "handover {seq}: the log's entry {} (to {}, measurement {}, by {by:?}, root {}) is not the one settled (to {to}, measurement {}, by {}, root {})",
                h.index, h.entry.successor, h.entry.measurement, h.entry.state_root, e.measurement, e.from, r.last_root
            )
        },
    ) {
        return;
    }
    let Some(ts) = ts else {
        t.fail(format!("handover {seq}: no timestamp for its block"));
        return;
    };
    let status = match r.reg.enclaves.get(&to) {
        None => Some("not registered"),
        Some((_, _, true)) => Some("revoked"),
        Some((_, exp, _)) if ts >= *exp => Some("expired"),
        Some((m, _, _)) if *m != e.measurement => Some("registered with another measurement"),
        Some(_) if r.reg.result_hashes.get(&to) != Some(&h.entry.result_hash) => {
            Some("registered under another attestation result than the logged one")
        }
        Some(_) => None,
    };
    t.expect(status.is_none(), || {
        format!(
            "handover {seq} (time {ts}): successor {to} {}",
            status.unwrap_or_default()
        )
    });
}

/// The last statement settled before a loss, whose own entry is void in a resumed log (the
/// `Resumed` entry `v` stands at its index). A cut: its inputs are the receipts accepted after
/// the statement entry before it, which must give its `inputsRoot` and `inputCount`, its exits
/// (`paid`) the grants logged there, and the successor resumed with every request decided
/// there. A heartbeat (no inputs, no exits): it carried none of them — they stayed in the open
/// batch, void — and the successor resumed with the requests decided at that statement entry.
pub(super) fn check_voided_statement(
    e: &StatementSettled,
    v: &LoggedResumed,
    paid: &[ExitGranted],
    t: &mut Tally,
) {
    let seq = e.sequence;
    let granted: Vec<(Address, Address, U256)> = v
        .void_exits
        .iter()
        .map(|(&(token, account), &amount)| (account, token, U256::from(amount)))
        .collect();
    let paid: Vec<(Address, Address, U256)> = paid
        .iter()
        .map(|x| (x.account, x.token, x.amount))
        .collect();
    let leaves: Vec<Hash> = v.void_batch.iter().map(|b| b.receipt_leaf).collect();
    let root = B256::from(merkle_root(&leaves).0);
    // A cut: every receipt and grant since the statement entry before it, every decision.
    let cut = root == e.inputsRoot
        && leaves.len() as u64 == u64::from(e.inputCount)
        && paid == granted
        && v.entry.requests_decided == v.decided.1;
    // A heartbeat: none of them (they stayed in the open batch, void). With no receipts and no
    // grants since, the two differ only in the decisions (all refusals then), which the
    // chain's events do not tell apart: either is accepted.
    let heartbeat = e.inputCount == 0
        && e.inputsRoot == B256::from(merkle_root(&[]).0)
        && paid.is_empty()
        && v.entry.requests_decided == v.decided.0;
    t.expect(cut || heartbeat, || {
        format!(
            "settled statement {seq} (its entry void: the log resumed at entry {}): it settled {} inputs with root {} and paid exits {paid:?}; the log holds {} accepted receipts (root {root}) and grants {granted:?} before it, decisions up to {} ({} at the statement entry before), and resumed with requests decided {} — neither the cut nor a heartbeat",
            v.index,
            e.inputCount,
            e.inputsRoot,
            leaves.len(),
            v.decided.1,
            v.decided.0,
            v.entry.requests_decided
        )
    });
}

/// `ResumedAfterLoss` (issue 12, lost data): governance resumed with a successor; the log must
/// hold its `Resumed` entry, with the chain's settled state as the replay has it at the event —
/// sequence, state root, log size (the last settled anchor's) — and the lost enclave.
pub(super) fn check_resumed(
    e: &sealbridge_chain::bindings::Settlement::ResumedAfterLoss,
    r: &Replay,
    view: &LogView,
    t: &mut Tally,
) {
    let seq = e.lastSequence;
    let Some(v) = view
        .resumed
        .iter()
        .find(|v| v.entry.sequence == seq && v.entry.settled_log_size == e.logSize)
    else {
        t.fail(format!(
            "governance resumed with {} after sequence {seq} at log size {}, but the log has no Resumed entry there",
            e.successor, e.logSize
        ));
        return;
    };
    let anchor = r.anchor;
    let x = &v.entry;
    t.expect(
        x.state_root == e.stateRoot
            && e.stateRoot == r.last_root
            && seq == r.last_seq
            && e.logSize == anchor,
        || {
            format!(
                "entry {}: resumed at sequence {} from root {} at log size {}; the chain resumed after sequence {seq} (settled {}) at root {} (settled {}) and log size {} (settled anchor {anchor})",
                v.index,
                x.sequence,
                x.state_root,
                x.settled_log_size,
                r.last_seq,
                e.stateRoot,
                r.last_root,
                e.logSize
            )
        },
    );
    t.expect(
        x.previous == Address::ZERO || x.previous == e.previous,
        || {
            format!(
                "entry {}: resumed naming {} as the lost enclave; the chain's was {}",
                v.index, x.previous, e.previous
            )
        },
    );
}

pub(super) fn check_anchors(
    settled: &[StatementSettled],
    cp: &Checkpoint,
    tiles: &MemoryTree,
    t: &mut Tally,
) -> Result<(), Error> {
    let mut prev: Option<(u64, Hash)> = None;
    let anchors = settled
        .iter()
        .map(|e| (Some(e.sequence), e.logSize, Hash(e.logRoot.0)))
        .chain(std::iter::once((None, cp.size, cp.root)));
    for (seq, size, root) in anchors {
        let what = seq.map_or("the checkpoint".to_string(), |s| format!("statement {s}"));
        if size > cp.size {
            t.fail(format!("{what} anchors size {size}, beyond the checkpoint's {}: the log was rolled back or is withheld", cp.size));
            continue;
        }
        if size == 0 {
            t.fail(format!("{what} anchors an empty log"));
            continue;
        }
        if !t.expect(root_at(tiles, size)? == root, || {
            format!("{what} anchors root {root} at size {size}, but the log's root there differs: the log was forked or rewritten")
        }) {
            prev = Some((size, root));
            continue;
        }
        if let Some((psize, proot)) = prev {
            let proof = if psize <= size {
                consistency_proof(tiles, psize, size)?
            } else {
                Vec::new()
            };
            t.expect(
                psize <= size && verify_consistency(psize, size, &proof, &proot, &root).is_ok(),
                || format!("{what} (size {size}) is not consistent with the anchor before it (size {psize})"),
            );
        }
        prev = Some((size, root));
    }
    Ok(())
}

pub(super) fn check_batches(
    view: &LogView,
    cp: &Checkpoint,
    tiles: &MemoryTree,
    t: &mut Tally,
) -> Result<(), Error> {
    for (seq, s) in &view.statements {
        let leaves: Vec<Hash> = s.batch.iter().map(|b| b.receipt_leaf).collect();
        let root = B256::from(merkle_root(&leaves).0);
        t.expect(
            root == s.statement.inputsRoot && leaves.len() as u64 == u64::from(s.statement.inputCount),
            || format!(
                "statement {seq}: the {} accepted receipts before it give root {root}, count {}; it says {} and {}",
                leaves.len(), leaves.len(), s.statement.inputsRoot, s.statement.inputCount
            ),
        );
        for b in &s.batch {
            let leaf = tiles
                .leaf_hashes()
                .get(usize::try_from(b.index).unwrap_or(usize::MAX))
                .copied()
                .unwrap_or_default();
            let proof = inclusion_proof(tiles, b.index, cp.size)?;
            t.expect(
                verify_inclusion(b.index, cp.size, &leaf, &proof, &cp.root).is_ok(),
                || {
                    format!(
                        "receipt {} of statement {seq} has no valid inclusion proof",
                        b.index
                    )
                },
            );
        }
    }
    Ok(())
}

/// By sorting, not hashing: a million envelope ids take 40 MB sorted, about three times that in
/// hash sets (issue 13: bounded memory).
pub(super) fn check_exactly_once(view: &LogView, settled: &[StatementSettled], t: &mut Tally) {
    let mut accepted: Vec<([u8; 32], u64)> = view.accepted.iter().map(|(i, e)| (*e, *i)).collect();
    accepted.sort_unstable();
    for w in accepted.windows(2) {
        if let [(a, _), (b, index)] = w {
            t.expect(a != b, || {
                format!("envelope {} accepted again at {index}", hex::encode(b))
            });
        }
    }
    t.ok();
    drop(accepted);
    let mut settled_ids: Vec<([u8; 32], u64)> = Vec::new();
    for e in settled {
        if let Some(s) = view.statements.get(&e.sequence) {
            settled_ids.extend(
                s.batch
                    .iter()
                    .filter_map(|b| view.envelope_at(b.index))
                    .map(|env| (env, e.sequence)),
            );
        }
    }
    settled_ids.sort_unstable();
    for w in settled_ids.windows(2) {
        if let [(a, _), (b, sequence)] = w {
            t.expect(a != b, || {
                format!(
                    "envelope {} settles twice (again in statement {sequence})",
                    hex::encode(b)
                )
            });
        }
    }
}

pub(super) fn check_counts(view: &LogView, settled: &[StatementSettled], t: &mut Tally) {
    let Some(last) = settled.last() else {
        // Nothing settled yet: statements in the log are pending (the relayer may lag).
        t.ok();
        return;
    };
    let end = view
        .statements
        .get(&last.sequence)
        .map(|s| s.index)
        .or_else(|| view.voided(last).map(|v| v.index))
        .unwrap_or(0);
    let accepted = view.accepted.iter().filter(|(i, _)| *i < end).count() as u64;
    let inputs: u64 = settled.iter().map(|e| u64::from(e.inputCount)).sum();
    t.expect(accepted == inputs, || {
        format!("{accepted} receipts accepted before the last settled statement, {inputs} inputs settled on chain")
    });
    // A statement whose own entry is void in a resumed log counts as logged (its `Resumed`
    // entry stands there).
    let voided = settled.iter().filter(|e| view.voided(e).is_some()).count() as u64;
    let logged = view.statements.range(..=last.sequence).count() as u64 + voided;
    t.expect(logged == settled.len() as u64, || {
        format!(
            "{logged} statements in the log up to sequence {}, {} settled",
            last.sequence,
            settled.len()
        )
    });
}

/// Exits: the host reported every logged request as the chain has it (id, account, token,
/// amount), and each settled statement paid exactly the grants logged in its batch. Requests on
/// chain that the log has not decided yet are pending, not failures (the host may lag); grants
/// after the last statement entry are pending too.
pub(super) fn check_exits(
    view: &LogView,
    requests: &BTreeMap<u64, WithdrawalRequested>,
    granted: &BTreeMap<u64, Vec<ExitGranted>>,
    settled: &[StatementSettled],
    t: &mut Tally,
) {
    for (index, e) in &view.exit_requests {
        let id = e.request_id;
        let Some(r) = requests.get(&id) else {
            t.fail(format!(
                "entry {index}: exit request {id} was never requested on chain (the host reported a request that does not exist)"
            ));
            continue;
        };
        t.expect(
            r.account == e.account && r.token == e.token && r.amount == U256::from(e.requested),
            || {
                format!(
                    "entry {index}: exit request {id} is {} of {} by {}, on chain {} of {} by {}",
                    e.requested, e.token, e.account, r.amount, r.token, r.account
                )
            },
        );
    }
    for e in settled {
        let seq = e.sequence;
        // A statement missing from the log fails `statements`; nothing to compare here.
        let Some(s) = view.statements.get(&seq) else {
            continue;
        };
        let logged: Vec<(Address, Address, U256)> = s
            .exits
            .iter()
            .map(|(&(token, account), &amount)| (account, token, U256::from(amount)))
            .collect();
        let paid: Vec<(Address, Address, U256)> = granted
            .get(&seq)
            .map(|g| g.iter().map(|x| (x.account, x.token, x.amount)).collect())
            .unwrap_or_default();
        t.expect(logged == paid, || {
            format!(
                "statement {seq} paid {} exit(s) {paid:?}; the log granted {} in its batch {logged:?}",
                paid.len(),
                logged.len()
            )
        });
    }
    // Exits paid under a sequence that never settled cannot happen on chain; say so if the
    // chain data claims it.
    for seq in granted.keys() {
        t.expect(settled.iter().any(|e| e.sequence == *seq), || {
            format!("exits paid under sequence {seq}, which did not settle")
        });
    }
}

pub(super) fn check_published(
    list: &[PublishedReceipt],
    view: &LogView,
    cp: &Checkpoint,
    tiles: &MemoryTree,
    t: &mut Tally,
) -> Result<(), Error> {
    for r in list {
        let seq = r.sequence;
        // An unlogged rejection (issue 11) has no entry of its own: it is counted in a
        // rejection summary.
        if seq == sealbridge_seal::receipt::UNLOGGED_SEQUENCE {
            continue;
        }
        let entry = view.kept.get(&seq);
        let same = entry
            .is_some_and(|e| matches!(entries::decode(e), Ok(Entry::Receipt(b)) if b == r.receipt));
        if !t.expect(same, || {
            format!("published receipt {seq} is not the log's entry {seq}")
        }) {
            continue;
        }
        let entry = entry.map(Vec::as_slice).unwrap_or_default();
        let proof = inclusion_proof(tiles, seq, cp.size)?;
        t.expect(
            verify_inclusion(seq, cp.size, &leaf_hash(entry), &proof, &cp.root).is_ok(),
            || format!("published receipt {seq}: inclusion proof does not verify"),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settled(input_count: u32, inputs_root: B256) -> StatementSettled {
        StatementSettled {
            sequence: 4,
            digest: B256::ZERO,
            newStateRoot: B256::ZERO,
            inputsRoot: inputs_root,
            inputCount: input_count,
            logSize: 10,
            logRoot: B256::ZERO,
            signer: Address::ZERO,
        }
    }

    fn resumed(requests_decided: u64) -> LoggedResumed {
        LoggedResumed {
            index: 10,
            entry: ResumedEntry {
                sequence: 4,
                settled_log_size: 10,
                lost_log_size: 12,
                requests_decided,
                block: 1,
                previous: Address::ZERO,
                previous_ed25519: [0; 32],
                state_root: B256::ZERO,
                balances_root: B256::ZERO,
            },
            // One receipt and one grant (request 3) after the statement entry before.
            void_batch: vec![BatchReceipt {
                index: 8,
                receipt_leaf: Hash([5; 32]),
            }],
            void_exits: [((Address::repeat_byte(0xee), Address::repeat_byte(1)), 7u128)]
                .into_iter()
                .collect(),
            decided: (2, 3),
        }
    }

    fn grant() -> ExitGranted {
        ExitGranted {
            sequence: 4,
            account: Address::repeat_byte(1),
            token: Address::repeat_byte(0xee),
            amount: U256::from(7),
        }
    }

    fn passes(e: &StatementSettled, v: &LoggedResumed, paid: &[ExitGranted]) -> bool {
        let mut t = Tally::default();
        check_voided_statement(e, v, paid, &mut t);
        t.failures == 0
    }

    /// Review: the voided statement was a heartbeat while an input and a decision waited in the
    /// open batch — an honest resumed log, which the audit used to fail; and the voided
    /// statement's exits were never compared with the log.
    #[test]
    fn a_voided_heartbeat_or_cut_passes_and_anything_else_fails() {
        let empty = B256::from(merkle_root(&[]).0);
        let one = B256::from(merkle_root(&[Hash([5; 32])]).0);
        // A heartbeat: nothing of the open batch, requests decided as at the entry before.
        assert!(passes(&settled(0, empty), &resumed(2), &[]));
        // … but not with the open batch's decisions claimed settled.
        assert!(!passes(&settled(0, empty), &resumed(3), &[]));
        // A cut: the receipt, the grant paid, every decision.
        assert!(passes(&settled(1, one), &resumed(3), &[grant()]));
        // A cut whose exits differ from the grants logged, or whose decisions are not all
        // carried, fails.
        assert!(!passes(&settled(1, one), &resumed(3), &[]));
        let mut more = grant();
        more.amount = U256::from(8);
        assert!(!passes(&settled(1, one), &resumed(3), &[more]));
        assert!(!passes(&settled(1, one), &resumed(2), &[grant()]));
        // Inputs that are not the receipts logged fail.
        assert!(!passes(&settled(1, empty), &resumed(3), &[grant()]));
    }
}
