//! `root-rotation`: the deployment's sealing root is replaced while it runs — no redeploy, no
//! policy change — and the old root's shares (even all n of them, say from keyholders
//! compromised later) open nothing of what the host stores afterwards.
//!
//! A custody enclave deals generation 0, boots, registers and settles statement 1 through a node
//! core. The host then rotates (`Custodian::rotate`): the enclave deals generation 1 and holds
//! it aside; the shares reach every keyholder (which keep generation 0 until told); the core
//! sends `CommitRootRotation` in a group of its own and stores a snapshot under the new root
//! alone (older snapshots and the journal below it deleted); the keyholders drop generation 0.
//! More obligations are accepted and statement 2 settles. The attacker then holds all three
//! generation-0 shares and the data directory (rows and the raw bytes of its files); the control
//! runs the same attack on a copy of the directory taken just before the rotation. Finally the
//! enclave process is dropped and a successor recovers generation 1 from 2 keyholders and
//! restores.
//!
//! Then keyholder-2 is compromised and refuses to store generation 2, which would block every
//! rotation — its own revocation included. Naming it (`rotate-root --without keyholder-2`)
//! makes the enclave deal a fresh generation (3: above the uncommitted 2 the others hold, which
//! is never overwritten) with no share sealed to it, which commits on the other two; leaving out two (below k) or an unknown name is refused before anything is dealt.
//! Finally keyholder-2 is wiped and restarted with the same identity: the next rotation, naming
//! nobody, brings it back at generation 4, and generation 4 recovers from it and one other.
//! (Before this, a rotation committed only when all n stored, and a keyholder took only the
//! very next generation, so one refusing keyholder blocked rotation for good.)

use std::path::Path;
use std::sync::{Arc, Mutex};

use sealbridge_core::forensics::{Produced, attack_data_dir, copy_dir};
use sealbridge_core::link::EnclaveLink;
use sealbridge_enclave::{
    boundary::{Request, Response},
    custody::{self, Share},
};
use sealbridge_keyholder::host::Custodian;
use sealbridge_proto::contexts::KEYHOLDER_SHARE_CONTEXT;
use sealbridge_seal::keys::KemSecretKey;
use serde_json::json;

use crate::custody::{
    Keyholders, Node, custody_enclave, err, fund_all, keyholder_secret, relay_stored, scratch,
    target, with_custody,
};
use crate::{Checks, Outcome, SandboxError, Scenario, World, WorldConfig};

/// See the module documentation.
#[derive(Debug)]
pub struct RootRotation;

impl Scenario for RootRotation {
    fn name(&self) -> &'static str {
        "root-rotation"
    }

    fn threat(&self) -> &'static str {
        "A sealing root once dealt can never be replaced without a redeploy, so keyholders \
         compromised later (all of them) open everything the host ever stored (DESIGN §12 \
         invariant 3, inputs stay confidential)."
    }

    fn world(&self) -> WorldConfig {
        WorldConfig {
            deposit: 0,
            batch_size: 4,
            policy: Some(with_custody),
            ..WorldConfig::default()
        }
    }

    fn run(&self, w: &mut World<'_>) -> Result<Outcome, SandboxError> {
        let base = scratch("root-rotation")?;
        let result = run(w, &base);
        let _ = std::fs::remove_dir_all(&base);
        result
    }
}

fn run(w: &mut World<'_>, base: &Path) -> Result<Outcome, SandboxError> {
    let t = target(w);
    let policy = w.policy.clone();
    let policy_hash_before = w.sb.policy_hash()?;
    let (dir, before_dir) = (base.join("node"), base.join("before-rotation"));
    let now = w.now()?;
    let keyholders = Keyholders::new(base, t, now)?;
    let produced: Arc<Mutex<Produced>> = Arc::default();

    w.step("a custody enclave deals generation 0 to 3 keyholders, boots, registers");
    let mut link = custody_enclave()?;
    let dealt = link
        .call(Request::CustodyDeal {
            policy: policy.clone(),
            target: t,
            now,
        })
        .map_err(err)?;
    let Response::Shares {
        sealed: old_sealed,
        root_id: old_root_id,
        ..
    } = &dealt
    else {
        return Err(err(format!("dealing: {dealt:?}")));
    };
    let (old_sealed, old_root_id) = (old_sealed.clone(), *old_root_id);
    Custodian::new(
        keyholders.on_chain(w.sb.chain(), t.settlement, &[]),
        policy.clone(),
        t,
    )
    .map_err(err)?
    .deliver(&dealt)
    .map_err(err)?;
    let node = Node::start(&dir, &policy, t, link, produced.clone(), now)?;
    node.register(w)?;
    let signer = node.describe()?.key_bundle.address;

    w.step("obligations accepted; statement 1 settles");
    fund_all(w, &node, 1_000_000)?;
    let (_, before_payloads) = node.submit(w, 4, 60_001)?;
    node.settle_down()?;
    let (settled_1, _) = relay_stored(w, &dir, 1)?;
    copy_dir(&dir, &before_dir).map_err(err)?;

    w.step("the host rotates the root: generation 1 dealt, delivered to all, committed; the snapshot under it stored alone");
    let rotation = {
        let custodian = Custodian::new(
            keyholders.on_chain(w.sb.chain(), t.settlement, &[]),
            policy.clone(),
            t,
        )
        .map_err(err)?
        .with_clock(move || now);
        custodian.rotate(|r| node.try_call(r)).map_err(err)?
    };
    let held_after: Vec<Vec<u64>> = keyholders
        .holders
        .iter()
        .map(|k| k.generations().unwrap_or_default())
        .collect();

    w.step("the deployment keeps settling: more obligations, statement 2 settles");
    let (_, after_payloads) = node.submit(w, 4, 70_001)?;
    let status = node.settle_down()?;
    let (settled_2, _) = relay_stored(w, &dir, 2)?;
    node.stop()?;
    let produced_now = produced.lock().map(|p| p.clone()).map_err(err)?;

    w.step("the attacker: all three generation-0 shares and the data directory");
    let old_shares: Vec<Share> = old_sealed
        .iter()
        .zip(0u8..)
        .map(|(s, i)| {
            let sk = KemSecretKey::from_bytes(keyholder_secret(i));
            custody::open_share(KEYHOLDER_SHARE_CONTEXT, s, &sk, &t).map_err(err)
        })
        .collect::<Result<_, _>>()?;
    let old_root = custody::recover(&old_shares)
        .map_err(err)?
        .into_iter()
        .next()
        .ok_or_else(|| err("old root"))?;
    let everything: Vec<Vec<u8>> = before_payloads
        .iter()
        .chain(&after_payloads)
        .cloned()
        .collect();
    // Control first on the copy (carving only, then rows).
    let control = attack_data_dir(&before_dir, &old_root.root, &produced_now, true).map_err(err)?;
    let attack = attack_data_dir(&dir, &old_root.root, &produced_now, true).map_err(err)?;

    w.step("the enclave process is lost; a successor recovers generation 1 from 2 keyholders and restores");
    let mut successor = custody_enclave()?;
    let now2 = w.now()?;
    let recovery = Custodian::new(
        keyholders.on_chain(w.sb.chain(), t.settlement, &[0]),
        policy.clone(),
        t,
    )
    .map_err(err)?
    .with_clock(move || now2)
    .recover(&mut successor)
    .map_err(err)?;
    let node = Node::start(&dir, &policy, t, successor, produced, now2)?;
    let restored = node.settle_down()?;
    let signer_after = node.describe()?.key_bundle.address;

    w.step("keyholder-2 refuses generation 2: nothing commits; left out by name, a fresh generation 3 commits on the other two");
    // A custodian over the keyholders with `down` not answering (a macro: each borrows the
    // world's chain only for its own statement).
    macro_rules! custodian {
        ($down:expr) => {
            Custodian::new(
                keyholders.on_chain(w.sb.chain(), t.settlement, $down),
                policy.clone(),
                t,
            )
            .map(|c| c.with_clock(move || now2))
            .map_err(err)
        };
    }
    let names = |v: &[&str]| v.iter().map(ToString::to_string).collect::<Vec<String>>();
    let blocked = custodian!(&[2])?.rotate(|r| node.try_call(r));
    let below_k = custodian!(&[])?.rotate_without(
        |r| node.try_call(r),
        &names(&["keyholder-1", "keyholder-2"]),
    );
    let unknown = custodian!(&[])?.rotate_without(|r| node.try_call(r), &names(&["keyholder-9"]));
    let generations = |ks: &crate::custody::Keyholders| -> Vec<Vec<u64>> {
        ks.holders
            .iter()
            .map(|k| k.generations().unwrap_or_default())
            .collect()
    };
    let held_after_refusals = generations(&keyholders);
    let revoked = custodian!(&[2])?
        .rotate_without(|r| node.try_call(r), &names(&["keyholder-2"]))
        .map_err(err)?;
    let held_after_revocation = generations(&keyholders);
    let (_, revoked_payloads) = node.submit(w, 4, 80_001)?;
    let revoked_status = node.settle_down()?;

    w.step("keyholder-2 is wiped and restarted with the same identity; the next rotation brings it back at generation 4");
    let shares_dir = keyholders.dirs[2].join("shares");
    std::fs::remove_dir_all(&shares_dir).map_err(err)?;
    std::fs::create_dir_all(&shares_dir).map_err(err)?;
    let wiped = keyholders.holders[2].generations().map_err(err)?;
    let back = custodian!(&[])?.rotate(|r| node.try_call(r)).map_err(err)?;
    let held_after_return = generations(&keyholders);
    node.stop()?;
    let mut third = custody_enclave()?;
    let recovered_with_returned = custodian!(&[1])?.recover(&mut third).map_err(err)?;

    let mut c = Checks::new();
    c.check(
        "statement 1 settled under generation 0",
        settled_1 == 1,
    )
    .check(
        "the rotation reached every keyholder, and each now holds generation 1 only",
        rotation.generation == 1
            && rotation.delivery.complete()
            && rotation.old_generation_still_held_by.is_empty()
            && held_after.iter().all(|g| g == &vec![1]),
    )
    .check(
        "control: the old root opens the directory as it was before the rotation",
        control.recovered.snapshots_opened > 0 && control.opened(&before_payloads) == before_payloads.len(),
    )
    .check(
        "after the rotation all three old shares open none of the host's current files (no snapshot, journal record or input, nothing carved)",
        attack.recovered.snapshots_opened == 0
            && attack.recovered.records_opened == 0
            && attack.opened(&everything) == 0
            && attack.carved_snapshots == 0
            && attack.carved_records == 0,
    )
    .check(
        "the deployment kept settling: statement 2 settled, same contract, policy and enclave signer",
        settled_2 == 1
            && status.sequence == 2
            && w.sb.last_sequence()? == 2
            && w.sb.policy_hash()? == policy_hash_before
            && signer_after == signer,
    )
    .check(
        "a refusing keyholder blocks a rotation that names nobody, and nothing commits; leaving out two (below k) or an unknown keyholder is refused before anything is dealt",
        blocked.is_err()
            && below_k.as_ref().is_err_and(|e| e.to_string().contains("below the threshold"))
            && unknown.as_ref().is_err_and(|e| e.to_string().contains("no keyholder keyholder-9"))
            && held_after_refusals[2] == vec![1]
            && held_after_refusals[..2].iter().all(|g| g.first() == Some(&1)),
    )
    .check(
        "left out by name, the compromised keyholder gets no share of the fresh generation 3 (above the blocked attempt's uncommitted 2, never overwritten), which commits on the other two; it holds only the dead generation 1, and the deployment keeps settling",
        revoked.generation == 3
            && revoked.delivery.stored() == 2
            && revoked.delivery.keyholders[2].outcome == sealbridge_keyholder::host::EXCLUDED
            && held_after_revocation == vec![vec![3], vec![3], vec![1]]
            && revoked_payloads.len() == 4
            && revoked_status.sequence >= 3,
    )
    .check(
        "wiped and restarted, the keyholder takes generation 4 from the next rotation (skipping 2 and 3), and generation 4 recovers from it and one other",
        wiped.is_empty()
            && back.generation == 4
            && back.delivery.stored() == 3
            && held_after_return.iter().all(|g| g == &vec![4])
            && recovered_with_returned.roots.first().map(|r| (r.0, r.1)) == Some((4, back.root_id)),
    )
    .check(
        "the new shares recover generation 1 (2 of 3), which restores the enclave",
        recovery.roots.first().map(|r| r.0) == Some(1)
            && recovery.roots.first().map(|r| r.1) == Some(rotation.root_id)
            && restored.sequence == 2,
    );
    Ok(c.outcome(json!({
        "old_root_id": old_root_id,
        "new_root_id": rotation.root_id,
        "rotation_ms": rotation.elapsed_ms,
        "generations_held_after_rotation": held_after,
        "shows": "old shares vs the host's CURRENT files (which an honest host deleted down to the new root); \
                  not a copy the host kept: see host_kept_a_pre_rotation_backup. The enclave signing and epoch keys are not rotated.",
        "host_kept_a_pre_rotation_backup": {
            "exposed_to_the_old_shares": control.opened(&before_payloads) > 0,
            "snapshots_opened": control.recovered.snapshots_opened,
            "records_opened": control.recovered.records_opened,
            "inputs_opened": control.opened(&everything),
        },
        "signing_key_unchanged_by_rotation": signer_after == signer,
        "old_shares_before_rotation": {
            "snapshots_opened": control.recovered.snapshots_opened,
            "records_opened": control.recovered.records_opened,
            "inputs_opened": control.opened(&everything),
        },
        "old_shares_vs_current_files_after_rotation": {
            "snapshots_opened": attack.recovered.snapshots_opened,
            "records_opened": attack.recovered.records_opened,
            "inputs_opened": attack.opened(&everything),
            "deleted_records_carved": attack.carved_records,
            "deleted_snapshots_carved": attack.carved_snapshots,
        },
        "recovery_after_rotation": recovery,
        "compromised_keyholder": {
            "rotation_naming_nobody": blocked.as_ref().err().map(ToString::to_string),
            "leaving_out_two": below_k.as_ref().err().map(ToString::to_string),
            "leaving_out_an_unknown_name": unknown.as_ref().err().map(ToString::to_string),
            "revocation": &revoked.delivery,
            "generations_held_after_revocation": held_after_revocation,
            "after_wipe_rotation": &back.delivery,
            "generations_held_after_return": held_after_return,
            "recovered_from_keyholders_0_and_2": recovered_with_returned.roots.first().map(|r| r.0),
        },
        "settled_on_chain": w.sb.last_sequence()?,
    })))
}
