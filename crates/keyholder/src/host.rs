//! The host's side of key custody: deliver a dealing to the keyholders, recover a lost
//! enclave's root from them, and rotate the root (docs/PROTOCOL.md "Key custody").
//!
//! The host only carries sealed bytes: shares are sealed by the enclave to each keyholder and
//! by each keyholder to the enclave's one-time recovery key. [`CustodyLink`] wraps any
//! [`EnclaveLink`] so that the node core needs no change: when a custody enclave process
//! answers `Boot` or `Restore` with "no sealing root", the link deals (fresh deployment) or
//! recovers (a successor on a new machine) and sends the request again.

use std::sync::{Arc, Mutex};

use alloy_primitives::{B256, Bytes};
use sealbridge_core::{CoreError, link::EnclaveLink};
use sealbridge_enclave::{
    EnclavePolicy, SettlementTarget,
    boundary::{BoundaryError, Request, Response},
    custody,
};

use crate::remote::{CommitRequest, DeliverRequest, KeyholderApi, ReleaseRequest};

/// The refusal a custody enclave process gives before it holds a root.
const NO_ROOT: &str = "no sealing root";

/// The most released shares taken from one keyholder (its newest generations): 16 keyholders ×
/// 16 stays within the 256 the enclave opens in one `RecoverRoot`.
pub const MAX_RELEASED_PER_KEYHOLDER: usize = 16;

/// What one keyholder did in a recovery or a delivery.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyholderOutcome {
    /// The keyholder (its URL or name).
    pub keyholder: String,
    /// `released` / `stored` / `already-held`, or why not.
    pub outcome: String,
    /// Generations it released or stored.
    pub generations: Vec<u64>,
}

/// A recovery, as the host saw it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RecoveryReport {
    /// Per keyholder.
    pub keyholders: Vec<KeyholderOutcome>,
    /// `(generation, root id, share indices used)` the enclave recombined, newest first.
    pub roots: Vec<(u64, B256, Vec<u8>)>,
    /// Shares the enclave did not count, and why.
    pub refused_shares: Vec<(u32, String)>,
    /// Wall time of the whole recovery (challenges, evidence, releases, recombination).
    pub elapsed_ms: u64,
}

/// A delivery of a dealing (or a rotation) to every keyholder.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeliveryReport {
    /// Root generation.
    pub generation: u64,
    /// Root id.
    pub root_id: B256,
    /// Per keyholder.
    pub keyholders: Vec<KeyholderOutcome>,
}

/// The outcome of a keyholder a rotation was told to leave out ([`Custodian::rotate_without`]).
pub const EXCLUDED: &str = "excluded";

impl DeliveryReport {
    /// Whether every keyholder stored its share (or was left out by name).
    pub fn complete(&self) -> bool {
        self.keyholders
            .iter()
            .all(|k| k.outcome == "stored" || k.outcome == "already-held" || k.outcome == EXCLUDED)
    }

    /// How many keyholders hold the new generation.
    pub fn stored(&self) -> usize {
        self.keyholders
            .iter()
            .filter(|k| k.outcome == "stored" || k.outcome == "already-held")
            .count()
    }
}

/// A keyholder the node core can reach from its own thread.
pub type SharedKeyholder = Box<dyn KeyholderApi + Send + Sync>;

/// The keyholders of one deployment, as the host reaches them (`K`: [`SharedKeyholder`] for a
/// node, anything implementing [`KeyholderApi`] in tests).
pub struct Custodian<K = SharedKeyholder> {
    keyholders: Vec<K>,
    policy: EnclavePolicy,
    target: SettlementTarget,
    clock: Arc<dyn Fn() -> u64 + Send + Sync>,
    last_recovery: Mutex<Option<RecoveryReport>>,
}

impl<K: KeyholderApi> std::fmt::Debug for Custodian<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Custodian")
            .field(
                "keyholders",
                &self.keyholders.iter().map(|k| k.name()).collect::<Vec<_>>(),
            )
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

fn enclave_err(what: &str, r: &Response) -> CoreError {
    match r {
        Response::Error(e) => CoreError::Enclave(format!("{what}: {e}")),
        r => CoreError::Enclave(format!("{what}: unexpected response {r:?}")),
    }
}

impl<K: KeyholderApi> Custodian<K> {
    /// The keyholders of `policy.custody`, in policy order (keyholder i gets share i).
    pub fn new(
        keyholders: Vec<K>,
        policy: EnclavePolicy,
        target: SettlementTarget,
    ) -> Result<Self, CoreError> {
        let Some(c) = &policy.custody else {
            return Err(CoreError::Config(
                "the policy names no keyholders (no custody)".into(),
            ));
        };
        if c.keyholders.len() != keyholders.len() {
            return Err(CoreError::Config(format!(
                "the policy names {} keyholders, {} were given",
                c.keyholders.len(),
                keyholders.len()
            )));
        }
        Ok(Self {
            keyholders,
            policy,
            target,
            clock: Arc::new(sealbridge_net::unix_now),
            last_recovery: Mutex::new(None),
        })
    }

    /// Take host time from `clock`.
    #[must_use]
    pub fn with_clock(mut self, clock: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The keyholders, in policy order.
    pub fn keyholders(&self) -> &[K] {
        &self.keyholders
    }

    /// The policy.
    pub fn policy(&self) -> &EnclavePolicy {
        &self.policy
    }

    /// The last recovery this custodian ran.
    pub fn last_recovery(&self) -> Option<RecoveryReport> {
        self.last_recovery.lock().ok().and_then(|r| r.clone())
    }

    /// Deliver a `Response::Shares` to every keyholder (share i to keyholder i).
    pub fn deliver(&self, shares: &Response) -> Result<DeliveryReport, CoreError> {
        self.deliver_except(shares, &[])
    }

    /// As [`Self::deliver`], leaving out the keyholders named in `without` (their share is
    /// never sent; their outcome is [`EXCLUDED`]).
    fn deliver_except(
        &self,
        shares: &Response,
        without: &[String],
    ) -> Result<DeliveryReport, CoreError> {
        let Response::Shares {
            generation,
            root_id,
            sealed,
            tee,
            evidence,
            dealer,
            commit_hash,
        } = shares
        else {
            return Err(enclave_err("dealing", shares));
        };
        let dealing: Vec<B256> = sealed
            .iter()
            .map(|s| B256::from(custody::sealed_digest(s)))
            .collect();
        let mut outcomes = Vec::new();
        if sealed.len() != self.keyholders.len() {
            return Err(CoreError::Enclave(format!(
                "the dealing has {} shares for {} keyholders",
                sealed.len(),
                self.keyholders.len()
            )));
        }
        for (k, s) in self.keyholders.iter().zip(sealed) {
            // The enclave seals nothing to a keyholder left out; one that did (an enclave of a
            // boundary version before 11 ignores `without`) must not be delivered or committed.
            if without.contains(&k.name()) != s.is_empty() {
                return Err(CoreError::Enclave(format!(
                    "the dealing {} a share for {}, which the rotation {}: nothing delivered",
                    if s.is_empty() { "has no" } else { "seals" },
                    k.name(),
                    if s.is_empty() {
                        "does not leave out"
                    } else {
                        "leaves out"
                    }
                )));
            }
        }
        for (k, s) in self.keyholders.iter().zip(sealed) {
            if without.contains(&k.name()) {
                tracing::warn!(keyholder = %k.name(), generation, "left out of the rotation by the operator");
                outcomes.push(KeyholderOutcome {
                    keyholder: k.name(),
                    outcome: EXCLUDED.into(),
                    generations: Vec::new(),
                });
                continue;
            }
            let r = k.deliver(&DeliverRequest {
                chain_id: self.target.chain_id,
                settlement: self.target.settlement,
                generation: *generation,
                sealed: Bytes::from(s.clone()),
                dealing: dealing.clone(),
                tee: *tee,
                evidence: Bytes::from(evidence.clone()),
                dealer: *dealer,
                commit_hash: *commit_hash,
            });
            let outcome = KeyholderOutcome {
                keyholder: k.name(),
                outcome: match &r {
                    Ok(d) if d.already_held => "already-held".into(),
                    Ok(_) => "stored".into(),
                    Err(e) => e.to_string(),
                },
                generations: vec![*generation],
            };
            tracing::info!(keyholder = %outcome.keyholder, outcome = %outcome.outcome, generation, "share delivered");
            outcomes.push(outcome);
        }
        Ok(DeliveryReport {
            generation: *generation,
            root_id: *root_id,
            keyholders: outcomes,
        })
    }

    /// Every keyholder answers and holds a share of `generation` (a first start whose enclave
    /// process kept the root of an earlier dealing); otherwise an error naming each that does
    /// not.
    pub fn check_every_keyholder_holds(&self, generation: u64) -> Result<(), CoreError> {
        let missing: Vec<String> = self
            .keyholders
            .iter()
            .filter_map(|k| match k.info() {
                Ok(i) if i.generations.contains(&generation) => None,
                Ok(i) => Some(format!("{} holds {:?}", k.name(), i.generations)),
                Err(e) => Some(format!("{}: {e}", k.name())),
            })
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(CoreError::Enclave(format!(
            "the enclave process already holds a sealing root, but not every keyholder holds a \
             share of generation {generation} ({}): it was dealt only in part, and serving under \
             it would lose the root with that process; nothing is served. If a keyholder is \
             only unreachable, start again once it answers; otherwise restart the enclave \
             process without a root — a first dealing is possible only while the deployment has \
             settled nothing and the keyholders hold nothing (docs/OPERATIONS.md \"Lost enclave \
             machine\", first start)",
            missing.join("; ")
        )))
    }

    /// Tell every keyholder that `generation` is in force (older shares dropped), with the
    /// token the enclave revealed when it committed the rotation. Returns the keyholders that
    /// did not confirm.
    pub fn commit(&self, generation: u64, commit_token: B256) -> Vec<KeyholderOutcome> {
        self.commit_except(generation, commit_token, &[])
    }

    fn commit_except(
        &self,
        generation: u64,
        commit_token: B256,
        without: &[String],
    ) -> Vec<KeyholderOutcome> {
        let mut failed = Vec::new();
        for k in self
            .keyholders
            .iter()
            .filter(|k| !without.contains(&k.name()))
        {
            if let Err(e) = k.commit(&CommitRequest {
                chain_id: self.target.chain_id,
                settlement: self.target.settlement,
                generation,
                commit_token,
            }) {
                failed.push(KeyholderOutcome {
                    keyholder: k.name(),
                    outcome: e.to_string(),
                    generations: vec![generation],
                });
            }
        }
        failed
    }

    /// Have the enclave session behind `link` (custody mode, no root yet) recover the root:
    /// per keyholder a challenge, evidence binding the session's one-time recovery key, and a
    /// release; then `RecoverRoot` with every share released. Fails naming each keyholder that
    /// refused and why when the enclave cannot recombine a root.
    pub fn recover(&self, link: &mut dyn EnclaveLink) -> Result<RecoveryReport, CoreError> {
        let started = std::time::Instant::now();
        let mut released = Vec::new();
        let mut outcomes = Vec::new();
        for k in &self.keyholders {
            let mut step = || -> Result<Vec<(u64, Vec<u8>)>, String> {
                let c = k.challenge().map_err(|e| format!("challenge: {e}"))?;
                let (recovery_key, tee, evidence) = match link
                    .call(Request::RecoveryEvidence {
                        target: self.target,
                        challenge: c.challenge.to_vec(),
                        now: (self.clock)(),
                    })
                    .map_err(|e| e.to_string())?
                {
                    Response::RecoveryEvidence {
                        recovery_key,
                        tee,
                        evidence,
                    } => (recovery_key, tee, evidence),
                    r => return Err(enclave_err("recovery evidence", &r).to_string()),
                };
                let r = k
                    .release(&ReleaseRequest {
                        chain_id: self.target.chain_id,
                        settlement: self.target.settlement,
                        recovery_key: B256::from(recovery_key),
                        challenge: c.challenge,
                        tee,
                        evidence: Bytes::from(evidence),
                    })
                    .map_err(|e| e.to_string())?;
                // At most the newest MAX_RELEASED_PER_KEYHOLDER generations of each keyholder:
                // the enclave refuses more than 256 released shares in all, so one keyholder
                // answering with hundreds (a liar) would otherwise block recovery for everyone
                // (review).
                let mut shares: Vec<(u64, Vec<u8>)> = r
                    .shares
                    .into_iter()
                    .map(|s| (s.generation, s.sealed.to_vec()))
                    .collect();
                shares.sort_by_key(|s| std::cmp::Reverse(s.0));
                if shares.len() > MAX_RELEASED_PER_KEYHOLDER {
                    tracing::warn!(
                        keyholder = %k.name(),
                        released = shares.len(),
                        kept = MAX_RELEASED_PER_KEYHOLDER,
                        "a keyholder released more shares than it can hold: only its newest kept"
                    );
                    shares.truncate(MAX_RELEASED_PER_KEYHOLDER);
                }
                Ok(shares)
            };
            let result = step();
            tracing::info!(
                keyholder = %k.name(),
                outcome = %result.as_ref().map_or_else(String::clone, |s| format!("released {} generation(s)", s.len())),
                "keyholder release"
            );
            match result {
                Ok(shares) => {
                    outcomes.push(KeyholderOutcome {
                        keyholder: k.name(),
                        outcome: "released".into(),
                        generations: shares.iter().map(|(g, _)| *g).collect(),
                    });
                    released.extend(shares.into_iter().map(|(_, s)| s));
                }
                Err(why) => outcomes.push(KeyholderOutcome {
                    keyholder: k.name(),
                    outcome: why,
                    generations: Vec::new(),
                }),
            }
        }
        let refusals = || {
            outcomes
                .iter()
                .filter(|o| o.outcome != "released")
                .map(|o| format!("{}: {}", o.keyholder, o.outcome))
                .collect::<Vec<_>>()
                .join("; ")
        };
        let r = link.call(Request::RecoverRoot {
            policy: self.policy.clone(),
            target: self.target,
            released,
        })?;
        let report = match r {
            Response::RootRecovered { roots, refused } => RecoveryReport {
                keyholders: outcomes.clone(),
                roots,
                refused_shares: refused,
                elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            },
            Response::Error(BoundaryError::Refused(why)) => {
                return Err(CoreError::Enclave(format!(
                    "the root could not be recovered from the keyholders ({why}); keyholders \
                     that refused: {}",
                    refusals()
                )));
            }
            r => return Err(enclave_err("recover root", &r)),
        };
        tracing::info!(
            roots = report.roots.len(),
            elapsed_ms = report.elapsed_ms,
            refused = %refusals(),
            "sealing root recovered from keyholders"
        );
        if let Ok(mut l) = self.last_recovery.lock() {
            *l = Some(report.clone());
        }
        Ok(report)
    }

    /// Deal a fresh root in the enclave session behind `link` and deliver it to every
    /// keyholder; an error unless every keyholder stored its share.
    pub fn deal(&self, link: &mut dyn EnclaveLink) -> Result<DeliveryReport, CoreError> {
        // Every keyholder must answer first: a dealing that reaches only some leaves them
        // holding a share of a root no enclave will have, which they never overwrite.
        let mut down = Vec::new();
        let mut holding = Vec::new();
        for k in &self.keyholders {
            match k.info() {
                Err(e) => down.push(format!("{}: {e}", k.name())),
                Ok(i) if !i.generations.is_empty() => {
                    holding.push(format!(
                        "{} holds generation(s) {:?}",
                        k.name(),
                        i.generations
                    ));
                }
                Ok(_) => {}
            }
        }
        if !down.is_empty() {
            return Err(CoreError::Enclave(format!(
                "a new root is dealt only when every keyholder answers, and {} of {} do not \
                 ({}); nothing was dealt",
                down.len(),
                self.keyholders.len(),
                down.join("; ")
            )));
        }
        // A first dealing only to keyholders that hold nothing (review): after a partial one,
        // dealing again would plant a second generation-0 root on the keyholders that were
        // empty, and those that stored the first would refuse it.
        if !holding.is_empty() {
            return Err(CoreError::Enclave(format!(
                "a first dealing goes only to keyholders that hold nothing, and {} \
                 (docs/OPERATIONS.md \"Lost enclave machine\", first start); nothing was dealt",
                holding.join("; ")
            )));
        }
        let r = link.call(Request::CustodyDeal {
            policy: self.policy.clone(),
            target: self.target,
            now: (self.clock)(),
        })?;
        let report = self.deliver(&r)?;
        if !report.complete() {
            return Err(CoreError::Enclave(format!(
                "the new root's shares did not reach every keyholder, so nothing is served under \
                 it; the keyholders that stored a share of it keep it and refuse another \
                 generation 0 (docs/OPERATIONS.md \"Lost enclave machine\", first start): {}",
                report
                    .keyholders
                    .iter()
                    .map(|k| format!("{}: {}", k.keyholder, k.outcome))
                    .collect::<Vec<_>>()
                    .join("; ")
            )));
        }
        tracing::info!(root_id = %report.root_id, "sealing root dealt to every keyholder");
        Ok(report)
    }

    /// Rotate the root of the running enclave reached through `call` (the node core's
    /// `Cmd::Call`): `RotateRoot`, deliver the new generation to every keyholder (the old one
    /// stays held), `CommitRootRotation` (the core stores a snapshot under the new root alone),
    /// then tell the keyholders to drop the old generation. A delivery that does not reach every
    /// keyholder commits nothing: the enclave keeps sealing under the old root.
    pub fn rotate(
        &self,
        call: impl FnMut(Request) -> Result<Response, CoreError>,
    ) -> Result<RotationReport, CoreError> {
        self.rotate_without(call, &[])
    }

    /// As [`Self::rotate`], leaving out the keyholders named in `without` (a compromised or
    /// lost keyholder that would otherwise block every rotation, its own revocation included):
    /// they are sent no share of the new generation, so once it commits what they hold opens
    /// nothing the host stores. Refused before anything is dealt when a name is unknown or
    /// fewer than k keyholders would remain. A keyholder left out receives a share again with
    /// a later rotation that does not name it (it accepts any later generation the
    /// deployment's enclave deals).
    pub fn rotate_without(
        &self,
        mut call: impl FnMut(Request) -> Result<Response, CoreError>,
        without: &[String],
    ) -> Result<RotationReport, CoreError> {
        let started = std::time::Instant::now();
        let names: Vec<String> = self.keyholders.iter().map(KeyholderApi::name).collect();
        let mut left_out: Vec<String> = Vec::new();
        for w in without {
            // As configured: a URL with a trailing slash names the same keyholder.
            let w = &w.trim_end_matches('/').to_string();
            if !names.contains(w) {
                return Err(CoreError::Config(format!(
                    "no keyholder {w} in this deployment (its keyholders: {})",
                    names.join(", ")
                )));
            }
            if !left_out.contains(w) {
                left_out.push(w.clone());
            }
        }
        let k = self
            .policy
            .custody
            .as_ref()
            .map_or(usize::MAX, |c| usize::from(c.threshold));
        let remaining = names.len() - left_out.len();
        if remaining < k {
            return Err(CoreError::Config(format!(
                "leaving out {} of {} keyholders leaves {remaining}, below the threshold {k}: \
                 the new generation could never be recovered",
                left_out.len(),
                names.len()
            )));
        }
        let positions: Vec<u8> = names
            .iter()
            .zip(0u8..)
            .filter(|(n, _)| left_out.contains(n))
            .map(|(_, i)| i)
            .collect();
        // Above every generation a keyholder that answers holds: a dealing of an earlier
        // attempt (committed nowhere, and never overwritten) must not share a generation with
        // this one.
        let at_least = self
            .keyholders
            .iter()
            .filter_map(|k| k.info().ok())
            .filter_map(|i| i.generations.iter().max().copied())
            .max()
            .map_or(0, |g| g.saturating_add(1));
        let r = call(Request::RotateRoot {
            now: (self.clock)(),
            without: positions,
            at_least,
        })?;
        let delivery = self.deliver_except(&r, &left_out)?;
        if !delivery.complete() || delivery.stored() < k {
            return Err(CoreError::Enclave(format!(
                "rotation to generation {} not committed: the shares did not reach every \
                 keyholder not left out ({}); a keyholder that refuses can be left out by name",
                delivery.generation,
                delivery
                    .keyholders
                    .iter()
                    .map(|k| format!("{}: {}", k.keyholder, k.outcome))
                    .collect::<Vec<_>>()
                    .join("; ")
            )));
        }
        let commit_token = match call(Request::CommitRootRotation)? {
            Response::RootRotated {
                generation,
                commit_token,
            } if generation == delivery.generation => commit_token,
            r => return Err(enclave_err("commit root rotation", &r)),
        };
        let not_dropped = self.commit_except(delivery.generation, commit_token, &left_out);
        Ok(RotationReport {
            generation: delivery.generation,
            root_id: delivery.root_id,
            delivery,
            old_generation_still_held_by: not_dropped,
            commit_token,
            elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        })
    }
}

/// A completed rotation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RotationReport {
    /// New generation.
    pub generation: u64,
    /// New root id.
    pub root_id: B256,
    /// The delivery.
    pub delivery: DeliveryReport,
    /// Keyholders that did not confirm dropping the old generation (retry `commit` with
    /// `commit_token`).
    pub old_generation_still_held_by: Vec<KeyholderOutcome>,
    /// The token that commits the new generation at the keyholders (revealed by the enclave
    /// once it sealed under the new root; it only lets keyholders drop older generations).
    pub commit_token: B256,
    /// Wall time.
    pub elapsed_ms: u64,
}

/// An [`EnclaveLink`] to a custody enclave process: deals or recovers the root when the
/// process has none (see the module documentation).
pub struct CustodyLink {
    inner: Box<dyn EnclaveLink>,
    custodian: Arc<Custodian<SharedKeyholder>>,
}

impl std::fmt::Debug for CustodyLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustodyLink")
            .field("custodian", &self.custodian)
            .finish_non_exhaustive()
    }
}

impl CustodyLink {
    /// Wrap `inner`.
    pub fn new(inner: Box<dyn EnclaveLink>, custodian: Arc<Custodian<SharedKeyholder>>) -> Self {
        Self { inner, custodian }
    }
}

fn no_root(r: &Response) -> bool {
    matches!(r, Response::Error(BoundaryError::Refused(why)) if why.contains(NO_ROOT))
}

impl EnclaveLink for CustodyLink {
    fn call(&mut self, request: Request) -> Result<Response, CoreError> {
        let custody = self.custodian.policy.custody.is_some();
        match &request {
            Request::Boot { .. } if custody => {
                let r = self.inner.call(request.clone())?;
                if !no_root(&r) {
                    // The enclave process already held a root (a persistent `sealbridge enclave
                    // --custody` process that dealt before the node stopped): it may be a
                    // dealing that reached only some keyholders, and a node serving under it
                    // would lose the root with that process (review). Serve only when every
                    // keyholder holds generation 0.
                    if !matches!(r, Response::Error(_)) {
                        self.custodian.check_every_keyholder_holds(0)?;
                    }
                    return Ok(r);
                }
                self.custodian.deal(self.inner.as_mut())?;
                self.inner.call(request)
            }
            // A successor resuming from the chain (its enclave and the host's data lost)
            // recovers the root from the keyholders the same way (issue 12).
            Request::Restore { .. }
            | Request::ResumeFromChain { .. }
            | Request::AwaitHandover { .. }
                if custody =>
            {
                let r = self.inner.call(request.clone())?;
                if !no_root(&r) {
                    return Ok(r);
                }
                self.custodian.recover(self.inner.as_mut())?;
                self.inner.call(request)
            }
            _ => self.inner.call(request),
        }
    }

    fn reconnect(&mut self) -> Result<(), CoreError> {
        self.inner.reconnect()
    }
}
