//! Key custody in the node (issue 12 part 3; docs/PROTOCOL.md §13, docs/OPERATIONS.md "Lost
//! enclave machine" and "Compromised keyholder").
//!
//! A deployment whose policy names keyholders keeps its sealing root only in the enclave's
//! memory and, split k-of-n, with the keyholders. The node is given their URLs
//! ([`NodeConfig::keyholders`], `--keyholder URL` in policy order) and reaches the enclave
//! through [`CustodyLink`]: on a first start the enclave deals the root and the node serves only
//! once **every** keyholder stored its share (a dealing that reached only k would leave no
//! margin: the first lost keyholder would lose the root); on every later start (the enclave
//! process holds no root — a restart, or a new machine with the same data directory) the root
//! is recovered from any k keyholders before the snapshot is restored. [`rotate_root`] rotates
//! the root of a stopped node's data directory (`sealbridge node rotate-root`).

use std::sync::Arc;

use sealbridge_chain::{Chain, Sealbridge};
use sealbridge_core::{CoreError, Shared, metrics::Metrics};
use sealbridge_enclave::SettlementTarget;
use sealbridge_keyholder::{
    KeyholderApi, RemoteKeyholder,
    host::{Custodian, RotationReport, SharedKeyholder},
};
use sealbridge_store::Store;

use crate::handover::{DataDirLock, refuse_unless_live};
use crate::node::{
    build_core_with, call_core, check_against_chain, check_known_policy, spawn_core,
};
use crate::{NodeConfig, NodeError, Setup};

/// The custodian of `setup`'s deployment over `cfg.keyholders`, or `None` when the policy puts
/// no root in custody. Refuses keyholder URLs for a policy without custody, a custody policy
/// without them (or with another number), a URL that is not http(s), and a reachable keyholder
/// that serves another key than the policy names at its position or another deployment. An
/// unreachable keyholder is only reported here (recovery needs k of them; a first dealing needs
/// every one and checks again).
pub fn custodian(
    cfg: &NodeConfig,
    setup: &Setup,
) -> Result<Option<Arc<Custodian<SharedKeyholder>>>, NodeError> {
    let Some(custody) = &setup.policy.custody else {
        if cfg.keyholders.is_empty() {
            return Ok(None);
        }
        return Err(NodeError::Config(
            "--keyholder given, but this deployment's policy puts no sealing root in custody \
             (its root is the TEE's): drop --keyholder"
                .into(),
        ));
    };
    if cfg.keyholders.len() != custody.keyholders.len() {
        return Err(NodeError::Config(format!(
            "this deployment's policy puts the sealing root in custody with {} keyholders ({} \
             recover it): pass --keyholder URL for each, in the policy's order ({} given)",
            custody.keyholders.len(),
            custody.threshold,
            cfg.keyholders.len()
        )));
    }
    let target = target(setup);
    let mut keyholders: Vec<SharedKeyholder> = Vec::new();
    for (i, (url, id)) in cfg.keyholders.iter().zip(&custody.keyholders).enumerate() {
        if !url.starts_with("http://") && !url.starts_with("https://") {
            return Err(NodeError::Config(format!(
                "keyholder URL {url:?}: only http:// and https:// URLs are supported"
            )));
        }
        let k = RemoteKeyholder::new(url)
            .map_err(|e| NodeError::Config(format!("keyholder {url}: {e}")))?;
        match k.info() {
            Ok(info) => {
                if info.hpke_pk.0 != id.hpke_pk {
                    return Err(NodeError::Config(format!(
                        "keyholder {url} (position {}) has key {}, but the policy names 0x{} at \
                         that position: give the keyholders in the policy's order",
                        i + 1,
                        info.hpke_pk,
                        hex::encode(id.hpke_pk)
                    )));
                }
                if (info.chain_id, info.settlement) != (target.chain_id, target.settlement) {
                    return Err(NodeError::Config(format!(
                        "keyholder {url} serves Settlement {} on chain {}, not this deployment's \
                         {} on chain {}",
                        info.settlement, info.chain_id, target.settlement, target.chain_id
                    )));
                }
                tracing::info!(keyholder = %url, position = i + 1, generations = ?info.generations, "keyholder reachable");
            }
            Err(e) => {
                tracing::warn!(keyholder = %url, position = i + 1, error = %e, "keyholder unreachable")
            }
        }
        keyholders.push(Box::new(k));
    }
    let custodian = Custodian::new(keyholders, setup.policy.clone(), target)?;
    Ok(Some(Arc::new(custodian)))
}

fn target(setup: &Setup) -> SettlementTarget {
    SettlementTarget {
        chain_id: setup.chain_id,
        settlement: setup.settlement,
    }
}

fn no_state(cfg: &NodeConfig) -> NodeError {
    NodeError::Config(format!(
        "{} holds no node's state: nothing to rotate",
        cfg.data_dir.display()
    ))
}

/// Refuse a data directory that holds no node (checked before anything is created in it).
pub fn require_state(cfg: &NodeConfig) -> Result<(), NodeError> {
    if cfg.data_dir.join("node.db").exists() {
        Ok(())
    } else {
        Err(no_state(cfg))
    }
}

/// `sealbridge node rotate-root`: on the data directory of a **stopped** node (its lock taken),
/// recover the enclave (the root from k keyholders), have it deal generation g + 1, deliver it
/// to every keyholder, commit it (the core stores a snapshot under the new root alone and
/// deletes the older snapshots and journal), tell the keyholders to drop older generations,
/// and stop (a final snapshot under the new root). A delivery that does not reach every
/// keyholder commits nothing: the node goes on under generation g. Keyholders named in
/// `without` (as configured: their URLs) are left out — the enclave seals them no share of
/// g + 1 — so a compromised or lost keyholder cannot block its own revocation; at least k must
/// remain.
pub fn rotate_root<C: Chain>(
    cfg: &NodeConfig,
    chain: C,
    without: &[String],
    progress: &mut dyn FnMut(&str),
) -> Result<RotationReport, NodeError> {
    require_state(cfg)?;
    let _lock = DataDirLock::acquire(&cfg.data_dir)?;
    let store = Store::open(&cfg.data_dir)?;
    let setup = store.meta::<Setup>("setup")?.ok_or_else(|| no_state(cfg))?;
    let Some(custodian) = custodian(cfg, &setup)? else {
        return Err(NodeError::Config(
            "this deployment's policy puts no sealing root in custody: there is no custody root \
             to rotate"
                .into(),
        ));
    };
    let sb = Sealbridge::attach(chain, setup.deployment());
    check_known_policy(&sb, &store, &setup.policy)?;
    let metrics = Arc::new(Metrics::default());
    let shared = Arc::new(Shared::default());
    let (mut core, _spawned) = build_core_with(
        cfg,
        store,
        &setup,
        &metrics,
        &shared,
        Some(custodian.clone()),
    )?;
    progress("recovering the enclave (its root from the keyholders)");
    let status = core.recover()?;
    refuse_unless_live(&status)?;
    check_against_chain(&sb, &Store::open(&cfg.data_dir)?, &status)?;
    if let Some(r) = custodian.last_recovery() {
        for k in &r.keyholders {
            progress(&format!("  {}: {}", k.keyholder, k.outcome));
        }
        let gens: Vec<u64> = r.roots.iter().map(|(g, _, _)| *g).collect();
        progress(&format!(
            "root recovered (generations {gens:?}) in {} ms; sequence {}",
            r.elapsed_ms, status.sequence
        ));
    }
    let mut workers = spawn_core(core, 16)?;
    let tx = workers.tx()?.clone();
    if without.is_empty() {
        progress("dealing the next generation to every keyholder");
    } else {
        progress(&format!(
            "dealing the next generation to every keyholder but {}",
            without.join(", ")
        ));
    }
    let report = custodian.rotate_without(
        |r| {
            call_core(&tx, r).map_err(|e| match e {
                NodeError::Core(c) => c,
                other => CoreError::Enclave(other.to_string()),
            })
        },
        without,
    );
    drop(tx);
    // The core stores a final snapshot (under the new root once committed) and ends.
    workers.stop_and_join();
    let report = report?;
    for k in &report.delivery.keyholders {
        progress(&format!(
            "  {}: {} generation {}",
            k.keyholder, k.outcome, report.generation
        ));
    }
    progress(&format!(
        "generation {} committed (root id {}); the snapshot under it is stored alone",
        report.generation, report.root_id
    ));
    for k in &report.old_generation_still_held_by {
        progress(&format!(
            "  {} did not confirm dropping the older generations: {}",
            k.keyholder, k.outcome
        ));
    }
    Ok(report)
}
