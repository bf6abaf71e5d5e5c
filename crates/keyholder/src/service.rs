//! The keyholder service: key and shares at rest, the release rule, the router.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use alloy_primitives::{Address, B256, Bytes, keccak256};
use axum::{
    Json, Router,
    body::Bytes as Body,
    extract::{DefaultBodyLimit, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use rand_core::{OsRng, RngCore};
use sealbridge_attest::fetch::CollateralSource;
use sealbridge_attest::{Collateral, Evidence, Policy};
use sealbridge_enclave::{
    SettlementTarget,
    custody::{self, KeyholderId, Share},
};
use sealbridge_proto::contexts::{KEYHOLDER_AT_REST_LABEL, KEYHOLDER_SHARE_CONTEXT};
use sealbridge_seal::{
    at_rest::{RootSecret, SealingKey},
    keys::{KemPublicKey, KemSecretKey},
};
use sealbridge_serve::{ServeOptions, Server, TlsFiles};

use crate::chain::{DeploymentChain, NoChain, SharedDeploymentChain};
use crate::remote::{
    ChallengeResponse, CommitRequest, CommitResponse, DeliverRequest, DeliverResponse, ErrorBody,
    KeyholderApi, KeyholderFailure, KeyholderInfo, ReleaseRequest, ReleaseResponse, ReleasedShare,
};

/// How long a challenge stays valid (keyholder time).
pub const CHALLENGE_TTL_SECS: u64 = 120;
/// Largest request body.
const MAX_REQUEST_BYTES: usize = 256 * 1024;
const KEY_FILE: &str = "keyholder-key.sealed";
const SHARES_DIR: &str = "shares";
const FLOOR_FILE: &str = "floor";

/// A refusal: HTTP status, code, message. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct KeyholderError {
    /// HTTP status.
    pub status: u16,
    /// Code.
    pub code: &'static str,
    /// In words.
    pub message: String,
}

fn fail(status: u16, code: &'static str, message: impl Into<String>) -> KeyholderError {
    KeyholderError {
        status,
        code,
        message: message.into(),
    }
}

fn io(path: &Path, e: impl std::fmt::Display) -> KeyholderError {
    fail(500, "storage", format!("{}: {e}", path.display()))
}

/// The keyholder's own simulated TEE root (a file, like the development enclave's).
fn own_root(dir: &Path) -> Result<RootSecret, KeyholderError> {
    let (_, root) = sealbridge_core::link::simulated_root_secret(dir)
        .map_err(|e| fail(500, "storage", e.to_string()))?;
    Ok(RootSecret::from_bytes(root))
}

fn at_rest_key(root: &RootSecret, what: &[u8]) -> SealingKey {
    SealingKey::derive(root, &[KEYHOLDER_AT_REST_LABEL, what].concat())
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), KeyholderError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| io(&tmp, e))?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io(path, e))
}

/// `keyholder init`: create the keyholder's HPKE key in `dir` (sealed at rest under its
/// simulated root) unless it exists; its public id either way.
pub fn init(dir: &Path) -> Result<(KeyholderId, bool), KeyholderError> {
    let mut seed = [0u8; 32];
    OsRng.fill_bytes(&mut seed);
    let r = init_with_secret(dir, seed);
    seed.fill(0);
    r
}

/// [`init`] with the given X25519 secret (tests and the sandbox, whose policies name keyholder
/// keys fixed in advance). Never overwrites an existing key.
pub fn init_with_secret(
    dir: &Path,
    mut seed: [u8; 32],
) -> Result<(KeyholderId, bool), KeyholderError> {
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let root = own_root(dir)?;
    let path = dir.join(KEY_FILE);
    let created = if path.exists() {
        false
    } else {
        let blob = at_rest_key(&root, b"hpke-key").seal(b"", &seed, &mut OsRng);
        seed.fill(0);
        write_atomic(&path, &blob)?;
        true
    };
    let (_, pk) = load_key(dir, &root)?;
    Ok((
        KeyholderId {
            hpke_pk: pk.0,
            tee: 0,
        },
        created,
    ))
}

fn load_key(dir: &Path, root: &RootSecret) -> Result<(KemSecretKey, KemPublicKey), KeyholderError> {
    let path = dir.join(KEY_FILE);
    let blob = std::fs::read(&path).map_err(|e| io(&path, e))?;
    let seed = at_rest_key(root, b"hpke-key")
        .open(b"", &blob)
        .map_err(|_| fail(500, "storage", format!("{}: does not open", path.display())))?;
    let seed: [u8; 32] = seed
        .as_slice()
        .try_into()
        .map_err(|_| fail(500, "storage", "key file: wrong length"))?;
    let sk = KemSecretKey::from_bytes(seed);
    let pk = sk.public();
    Ok((sk, pk))
}

/// The public id of the keyholder in `dir` (after `init`).
pub fn public_id(dir: &Path) -> Result<KeyholderId, KeyholderError> {
    let root = own_root(dir)?;
    let (_, pk) = load_key(dir, &root)?;
    Ok(KeyholderId {
        hpke_pk: pk.0,
        tee: 0,
    })
}

/// Challenges are stateless until used (review: an unauthenticated flood of `GET
/// /v1/challenge` used to evict a recovering enclave's outstanding challenge from a bounded
/// table): `issued_at (8, BE) ‖ random (8) ‖ tag (16)`, the tag the first 16 bytes of
/// `keccak256(key ‖ issued_at ‖ random)` under a key only this process holds. A release checks
/// the tag and the age and records the challenge as used until it expires; only a release
/// attempt (a POST carrying it) spends one, and nothing a flood does removes another's.
struct Challenges {
    /// This process's tag key (challenges do not outlive it: they live two minutes).
    key: [u8; 32],
    /// Challenges spent by a release attempt, with their issue time, until they expire.
    used: BTreeMap<[u8; 32], u64>,
}

impl Challenges {
    fn new() -> Self {
        let mut key = [0u8; 32];
        OsRng.fill_bytes(&mut key);
        Self {
            key,
            used: BTreeMap::new(),
        }
    }

    fn tag(&self, head: &[u8]) -> [u8; 16] {
        let mac = keccak256([self.key.as_slice(), head].concat());
        let mut tag = [0u8; 16];
        tag.copy_from_slice(&mac[..16]);
        tag
    }

    fn issue(&self, now: u64) -> [u8; 32] {
        let mut c = [0u8; 32];
        c[..8].copy_from_slice(&now.to_be_bytes());
        OsRng.fill_bytes(&mut c[8..16]);
        let tag = self.tag(&c[..16]);
        c[16..].copy_from_slice(&tag);
        c
    }

    /// When `c` was issued, if this process issued it.
    fn issued(&self, c: &[u8; 32]) -> Option<u64> {
        let (head, tag) = c.split_at(16);
        if self.tag(head) != tag {
            return None;
        }
        let mut t = [0u8; 8];
        t.copy_from_slice(&head[..8]);
        Some(u64::from_be_bytes(t))
    }
}

/// One keyholder for one deployment (see the crate documentation).
pub struct Keyholder {
    dir: PathBuf,
    sk: KemSecretKey,
    pk: KemPublicKey,
    shares_key: SealingKey,
    target: SettlementTarget,
    appraisal: Policy,
    chain: Option<SharedDeploymentChain>,
    clock: Arc<dyn Fn() -> u64 + Send + Sync>,
    state: Mutex<Challenges>,
    /// Fetches the collateral evidence arrives without (`--pcs`, `--kds`); without it only
    /// evidence that needs none (the simulated TEE, Nitro) can pass.
    collateral: Option<Arc<CollateralSource>>,
}

impl std::fmt::Debug for Keyholder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyholder")
            .field("dir", &self.dir)
            .field("pk", &hex::encode(self.pk.0))
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl Keyholder {
    /// Open the keyholder in `dir` (created by [`init`]) for the deployment `target`, appraising
    /// evidence under `appraisal` and reading the deployment from `chain` (`None`: only the
    /// `_with` methods, which are given a chain reader per call, can pass).
    pub fn open(
        dir: &Path,
        target: SettlementTarget,
        appraisal: Policy,
        chain: Option<SharedDeploymentChain>,
    ) -> Result<Self, KeyholderError> {
        let root = own_root(dir)?;
        let (sk, pk) = load_key(dir, &root)?;
        let shares = dir.join(SHARES_DIR);
        std::fs::create_dir_all(&shares).map_err(|e| io(&shares, e))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            sk,
            pk,
            shares_key: at_rest_key(&root, b"shares"),
            target,
            appraisal,
            chain,
            clock: Arc::new(sealbridge_net::unix_now),
            state: Mutex::new(Challenges::new()),
            collateral: None,
        })
    }

    /// Fetch the collateral that SGX, TDX and SEV-SNP evidence needs (TCB info, QE identity,
    /// CRLs, VCEK) from Intel PCS / a PCCS and AMD KDS through `source`.
    #[must_use]
    pub fn with_collateral_source(mut self, source: Arc<CollateralSource>) -> Self {
        self.collateral = Some(source);
        self
    }

    /// Take time from `clock` (tests).
    #[must_use]
    pub fn with_clock(mut self, clock: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Its public id.
    pub fn id(&self) -> KeyholderId {
        KeyholderId {
            hpke_pk: self.pk.0,
            tee: 0,
        }
    }

    fn deployment(&self, chain_id: u64, settlement: Address) -> Result<(), KeyholderError> {
        if chain_id != self.target.chain_id || settlement != self.target.settlement {
            return Err(fail(
                422,
                "wrong_deployment",
                format!(
                    "this keyholder serves chain {} settlement {}, not chain {chain_id} \
                     settlement {settlement}",
                    self.target.chain_id, self.target.settlement
                ),
            ));
        }
        Ok(())
    }

    fn share_path(&self, generation: u64) -> PathBuf {
        self.dir
            .join(SHARES_DIR)
            .join(format!("{generation}.sealed"))
    }

    fn floor(&self) -> Result<u64, KeyholderError> {
        let path = self.dir.join(SHARES_DIR).join(FLOOR_FILE);
        match std::fs::read_to_string(&path) {
            Ok(t) => t
                .trim()
                .parse()
                .map_err(|_| fail(500, "storage", format!("{}: not a number", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(io(&path, e)),
        }
    }

    /// Generations held, ascending.
    pub fn generations(&self) -> Result<Vec<u64>, KeyholderError> {
        let dir = self.dir.join(SHARES_DIR);
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(|e| io(&dir, e))? {
            let entry = entry.map_err(|e| io(&dir, e))?;
            let name = entry.file_name();
            if let Some(g) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".sealed"))
                .and_then(|n| n.parse::<u64>().ok())
            {
                out.push(g);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    fn aad(&self, generation: u64) -> Vec<u8> {
        [
            custody::deployment_bytes(&self.target).as_slice(),
            &generation.to_be_bytes(),
        ]
        .concat()
    }

    fn load_share(&self, generation: u64) -> Result<Share, KeyholderError> {
        let path = self.share_path(generation);
        let blob = std::fs::read(&path).map_err(|e| io(&path, e))?;
        let plain = self
            .shares_key
            .open(&self.aad(generation), &blob)
            .map_err(|_| fail(500, "storage", format!("{}: does not open", path.display())))?;
        Share::from_bytes(&plain).map_err(|e| fail(500, "storage", e.to_string()))
    }

    /// Verify `evidence` (TEE kind `tee`) under the appraisal policy, check its report_data is
    /// `expected`, and that the chain allows its measurement.
    fn appraise(
        &self,
        tee: u8,
        evidence: &[u8],
        expected: &[u8; 64],
        chain: &dyn DeploymentChain,
    ) -> Result<B256, KeyholderError> {
        let evidence = match tee {
            0 => Evidence::Simulated(evidence.to_vec()),
            _ => Evidence::detect(evidence.to_vec())
                .map_err(|e| fail(422, "refused", format!("evidence: {e}")))?,
        };
        let now = (self.clock)();
        let refused = |e: sealbridge_attest::Error| {
            fail(
                422,
                "refused",
                format!("evidence does not pass appraisal: {e}"),
            )
        };
        let verify = |c: &Collateral| sealbridge_attest::verify(&evidence, c, now, &self.appraisal);
        // Fetched collateral (within the source's budget) is kept only once this verification
        // passed with it, or it is shown genuine for its key.
        let verified = match &self.collateral {
            Some(src) => {
                let cache_errors = src.cache_errors();
                let r = src.resolve_verified(&evidence, &Collateral::None, now, verify);
                if src.cache_errors() > cache_errors {
                    tracing::warn!(
                        error = src.last_cache_error().unwrap_or_default(),
                        "collateral cache write failed; kept in memory only"
                    );
                }
                r
            }
            None => verify(&Collateral::None),
        }
        .map_err(refused)?;
        if verified.claims.report_data.as_slice() != expected.as_slice() {
            return Err(fail(
                422,
                "wrong_binding",
                "the evidence binds another key, deployment, challenge or dealing",
            ));
        }
        let m = B256::from(verified.claims.measurement.0);
        match chain.measurement_allowed(m) {
            Ok(true) => Ok(m),
            Ok(false) => Err(fail(
                403,
                "measurement_not_allowed",
                format!("Settlement.measurementAllowed({m}) is false on chain"),
            )),
            Err(e) => Err(fail(503, "chain_unavailable", e)),
        }
    }

    /// `GET /v1/keyholder`.
    pub fn info(&self) -> Result<KeyholderInfo, KeyholderError> {
        Ok(KeyholderInfo {
            hpke_pk: B256::from(self.pk.0),
            tee: 0,
            chain_id: self.target.chain_id,
            settlement: self.target.settlement,
            generations: self.generations()?,
        })
    }

    /// `GET /v1/challenge`.
    pub fn challenge(&self) -> Result<ChallengeResponse, KeyholderError> {
        let now = (self.clock)();
        let c = self
            .state
            .lock()
            .map_err(|_| fail(500, "internal", "state poisoned"))?
            .issue(now);
        Ok(ChallengeResponse {
            challenge: Bytes::from(c.to_vec()),
            expires_at: now + CHALLENGE_TTL_SECS,
        })
    }

    fn oracle(&self) -> &dyn DeploymentChain {
        match &self.chain {
            Some(c) => c.as_ref(),
            None => &NoChain,
        }
    }

    /// `POST /v1/shares`, reading `Settlement.measurementAllowed` through its own chain client.
    pub fn deliver(&self, r: &DeliverRequest) -> Result<DeliverResponse, KeyholderError> {
        self.deliver_with(r, self.oracle())
    }

    /// `POST /v1/release`, reading `Settlement.measurementAllowed` through its own chain client.
    pub fn release(&self, r: &ReleaseRequest) -> Result<ReleaseResponse, KeyholderError> {
        self.release_with(r, self.oracle())
    }

    /// [`Keyholder::deliver`], reading the deployment through `chain`.
    pub fn deliver_with(
        &self,
        r: &DeliverRequest,
        chain: &dyn DeploymentChain,
    ) -> Result<DeliverResponse, KeyholderError> {
        self.deployment(r.chain_id, r.settlement)?;
        let share = custody::open_share(KEYHOLDER_SHARE_CONTEXT, &r.sealed, &self.sk, &self.target)
            .map_err(|e| fail(422, "bad_share", e.to_string()))?;
        if share.generation != r.generation {
            return Err(fail(
                422,
                "bad_share",
                format!(
                    "the share is of generation {}, the request says {}",
                    share.generation, r.generation
                ),
            ));
        }
        let mine = custody::sealed_digest(&r.sealed);
        let listed = r
            .dealing
            .get(usize::from(share.index).saturating_sub(1))
            .is_some_and(|d| d.0 == mine);
        if !listed {
            return Err(fail(
                422,
                "not_in_dealing",
                "the share is not at its index in the dealing",
            ));
        }
        let digests: Vec<[u8; 32]> = r.dealing.iter().map(|d| d.0).collect();
        let expected = sealbridge_attest::keyholder_deal_report_data(
            &custody::dealing_digest(&digests),
            &custody::deployment_bytes(&self.target),
            r.generation,
            r.dealer.as_slice(),
            r.commit_hash.as_slice(),
        );
        self.appraise(r.tee, &r.evidence, &expected, chain)?;
        let _guard = self
            .state
            .lock()
            .map_err(|_| fail(500, "internal", "state poisoned"))?;
        let path = self.share_path(r.generation);
        let floor = self.floor()?;
        if path.exists() {
            let held = self.load_share(r.generation)?;
            if held == share {
                return Ok(DeliverResponse {
                    generation: share.generation,
                    index: share.index,
                    root_id: B256::from(share.root_id),
                    already_held: true,
                });
            }
            // Never overwritten, not even a rotation dealt but never committed: a discarded
            // dealing replayed could otherwise displace the share of the one committed at the
            // same generation (review). The enclave deals a retried rotation at a fresh
            // generation above every one a keyholder holds (`RotateRoot::at_least`).
            return Err(fail(
                409,
                "conflict",
                format!(
                    "a different share of generation {} is held; it is never overwritten",
                    r.generation
                ),
            ));
        }
        self.check_next_generation(r.generation, floor)?;
        Self::check_dealer(r.generation, r.dealer, chain)?;
        let blob = self
            .shares_key
            .seal(&self.aad(r.generation), &share.to_bytes(), &mut OsRng);
        let commit = self.shares_key.seal(
            &self.commit_aad(r.generation),
            r.commit_hash.as_slice(),
            &mut OsRng,
        );
        // The share, then its commit hash: a crash between leaves a share whose commit is
        // refused (no hash, or the replaced dealing's), never one committed by another token.
        write_atomic(&path, &blob)?;
        write_atomic(&self.commit_path(r.generation), &commit)?;
        tracing::info!(
            generation = share.generation,
            index = share.index,
            root_id = %hex::encode(share.root_id),
            dealer = %r.dealer,
            "share stored"
        );
        Ok(DeliverResponse {
            generation: share.generation,
            index: share.index,
            root_id: B256::from(share.root_id),
            already_held: false,
        })
    }

    /// H3: a new generation is above the one in force (`floor`; older ones are
    /// `stale_generation`, 409) — or 0, a first dealing, for a keyholder that holds nothing and
    /// never committed. It may skip generations: a keyholder left out of a rotation
    /// (`rotate-root --without`), or wiped and restarted with the same identity, takes the next
    /// rotation it is dealt. Only the deployment's enclave deals a generation above 0
    /// ([`Self::check_dealer`]), and it deals each once (or again, uncommitted, to replace it).
    fn check_next_generation(&self, generation: u64, floor: u64) -> Result<(), KeyholderError> {
        let held = self.generations()?;
        let lowest = if held.is_empty() && floor == 0 {
            0
        } else {
            floor.saturating_add(1)
        };
        if generation < lowest {
            return Err(fail(
                409,
                "stale_generation",
                format!(
                    "generation {generation} is not above the one in force ({floor}; held: \
                     {held:?})"
                ),
            ));
        }
        Ok(())
    }

    /// H3: who may deal `generation`. The first dealing (generation 0) comes before the enclave
    /// has a signing key (`dealer` zero) and only while the deployment has settled nothing
    /// (`Settlement.enclave()` zero); a rotation only from the deployment's enclave:
    /// `Settlement.enclave()` once that is set, before that an Active registered enclave (its
    /// measurement is allowed: the evidence was checked).
    fn check_dealer(
        generation: u64,
        dealer: Address,
        chain: &dyn DeploymentChain,
    ) -> Result<(), KeyholderError> {
        let current = chain
            .current_enclave()
            .map_err(|e| fail(503, "chain_unavailable", e))?;
        if generation == 0 {
            if !current.is_zero() {
                return Err(fail(
                    409,
                    "deployment_live",
                    format!(
                        "the deployment has settled under enclave {current}: a first dealing \
                         (generation 0) is no longer accepted"
                    ),
                ));
            }
            return Ok(());
        }
        if dealer.is_zero() {
            return Err(fail(
                403,
                "not_deployment_enclave",
                "a rotation must name its dealer (the dealing enclave's signing address)",
            ));
        }
        if !current.is_zero() {
            if dealer != current {
                return Err(fail(
                    403,
                    "not_deployment_enclave",
                    format!(
                        "the dealer {dealer} is not the deployment's enclave {current} \
                         (Settlement.enclave)"
                    ),
                ));
            }
            return Ok(());
        }
        // Before the first settled statement no enclave is the deployment's: another registered
        // enclave could otherwise rotate and commit, making every keyholder drop the real
        // generation 0 (review). A rotation waits for `Settlement.enclave()`.
        let _ = dealer;
        Err(fail(
            403,
            "not_deployment_enclave",
            "no statement has settled yet, so the chain names no enclave of this deployment \
             (Settlement.enclave() is zero): rotate the root after the first statement settles",
        ))
    }

    fn commit_path(&self, generation: u64) -> PathBuf {
        self.dir
            .join(SHARES_DIR)
            .join(format!("{generation}.commit"))
    }

    fn commit_aad(&self, generation: u64) -> Vec<u8> {
        [self.aad(generation).as_slice(), b"commit"].concat()
    }

    /// The commit hash the dealing of `generation` bound (zero: never committed).
    fn commit_hash(&self, generation: u64) -> Result<B256, KeyholderError> {
        let path = self.commit_path(generation);
        let blob = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(B256::ZERO),
            Err(e) => return Err(io(&path, e)),
        };
        let plain = self
            .shares_key
            .open(&self.commit_aad(generation), &blob)
            .map_err(|_| fail(500, "storage", format!("{}: does not open", path.display())))?;
        B256::try_from(plain.as_slice())
            .map_err(|_| fail(500, "storage", format!("{}: wrong length", path.display())))
    }

    /// `POST /v1/shares/commit`: drop generations below `generation`, which must be held and
    /// whose dealing bound `keccak256(commit_token)` (H3: only the dealing enclave, which
    /// reveals the token when it commits the rotation, can make keyholders drop a generation).
    pub fn commit(&self, r: &CommitRequest) -> Result<CommitResponse, KeyholderError> {
        self.deployment(r.chain_id, r.settlement)?;
        let _guard = self
            .state
            .lock()
            .map_err(|_| fail(500, "internal", "state poisoned"))?;
        let held = self.generations()?;
        if !held.contains(&r.generation) {
            return Err(fail(
                409,
                "not_held",
                format!(
                    "no share of generation {} is held: deliver it first",
                    r.generation
                ),
            ));
        }
        let expected = self.commit_hash(r.generation)?;
        if expected.is_zero() {
            return Err(fail(
                409,
                "not_committable",
                format!(
                    "generation {} was dealt without a commit token (a first dealing): there is \
                     nothing to commit",
                    r.generation
                ),
            ));
        }
        if alloy_primitives::keccak256(r.commit_token) != expected {
            return Err(fail(
                403,
                "bad_commit_token",
                format!(
                    "the commit token is not the one generation {}'s dealing bound",
                    r.generation
                ),
            ));
        }
        let floor = self.dir.join(SHARES_DIR).join(FLOOR_FILE);
        write_atomic(&floor, r.generation.to_string().as_bytes())?;
        let mut dropped = Vec::new();
        for g in held.iter().copied().filter(|g| *g < r.generation) {
            let path = self.share_path(g);
            std::fs::remove_file(&path).map_err(|e| io(&path, e))?;
            let commit = self.commit_path(g);
            if commit.exists() {
                std::fs::remove_file(&commit).map_err(|e| io(&commit, e))?;
            }
            dropped.push(g);
        }
        tracing::info!(generation = r.generation, ?dropped, "rotation committed");
        Ok(CommitResponse {
            kept: self.generations()?,
            dropped,
        })
    }

    /// [`Keyholder::release`], reading the deployment through `chain` (see the crate
    /// documentation for the rule).
    pub fn release_with(
        &self,
        r: &ReleaseRequest,
        chain: &dyn DeploymentChain,
    ) -> Result<ReleaseResponse, KeyholderError> {
        self.deployment(r.chain_id, r.settlement)?;
        let now = (self.clock)();
        // Single use, whatever comes next.
        let challenge: Option<[u8; 32]> = r.challenge.as_ref().try_into().ok();
        enum Spent {
            Fresh,
            Expired,
            Unknown,
        }
        let spent = {
            let mut st = self
                .state
                .lock()
                .map_err(|_| fail(500, "internal", "state poisoned"))?;
            st.used
                .retain(|_, issued| now.saturating_sub(*issued) <= CHALLENGE_TTL_SECS);
            match challenge.and_then(|c| st.issued(&c).map(|t| (c, t))) {
                None => Spent::Unknown,
                Some((_, t)) if t > now || now - t > CHALLENGE_TTL_SECS => Spent::Expired,
                // Spent by this attempt, whatever comes next; a second use is unknown.
                Some((c, t)) => {
                    if st.used.insert(c, t).is_none() {
                        Spent::Fresh
                    } else {
                        Spent::Unknown
                    }
                }
            }
        };
        match spent {
            Spent::Fresh => {}
            Spent::Expired => {
                return Err(fail(422, "stale_challenge", "the challenge has expired"));
            }
            Spent::Unknown => {
                return Err(fail(
                    422,
                    "stale_challenge",
                    "not a challenge this keyholder issued, or already used",
                ));
            }
        }
        let expected = sealbridge_attest::keyholder_request_report_data(
            r.recovery_key.as_slice(),
            &custody::deployment_bytes(&self.target),
            &r.challenge,
        );
        let measurement = self.appraise(r.tee, &r.evidence, &expected, chain)?;
        let recovery = KemPublicKey(r.recovery_key.0);
        let mut shares = Vec::new();
        for g in self.generations()?.into_iter().rev() {
            let share = self.load_share(g)?;
            // Auth mode with this keyholder's static key: the enclave opens it only as coming
            // from the keyholder the policy names at this share's position.
            let sealed = custody::seal_released(&share, &recovery, &self.sk, &mut OsRng)
                .map_err(|e| fail(422, "bad_recovery_key", e.to_string()))?;
            shares.push(ReleasedShare {
                generation: g,
                sealed: Bytes::from(sealed),
            });
        }
        if shares.is_empty() {
            return Err(fail(404, "no_share", "no share of this deployment is held"));
        }
        tracing::info!(%measurement, generations = shares.len(), "shares released");
        Ok(ReleaseResponse { shares })
    }
}

fn to_failure(e: KeyholderError) -> KeyholderFailure {
    KeyholderFailure::Refused {
        status: e.status,
        code: e.code.to_string(),
        message: e.message,
    }
}

/// In process, the same answers as over HTTP.
impl KeyholderApi for Keyholder {
    fn name(&self) -> String {
        format!("keyholder {}", hex::encode(&self.pk.0[..6]))
    }
    fn info(&self) -> Result<KeyholderInfo, KeyholderFailure> {
        Keyholder::info(self).map_err(to_failure)
    }
    fn challenge(&self) -> Result<ChallengeResponse, KeyholderFailure> {
        Keyholder::challenge(self).map_err(to_failure)
    }
    fn deliver(&self, r: &DeliverRequest) -> Result<DeliverResponse, KeyholderFailure> {
        Keyholder::deliver(self, r).map_err(to_failure)
    }
    fn commit(&self, r: &CommitRequest) -> Result<CommitResponse, KeyholderFailure> {
        Keyholder::commit(self, r).map_err(to_failure)
    }
    fn release(&self, r: &ReleaseRequest) -> Result<ReleaseResponse, KeyholderFailure> {
        Keyholder::release(self, r).map_err(to_failure)
    }
}

impl<K: KeyholderApi + ?Sized> KeyholderApi for Box<K> {
    fn name(&self) -> String {
        (**self).name()
    }
    fn info(&self) -> Result<KeyholderInfo, KeyholderFailure> {
        (**self).info()
    }
    fn challenge(&self) -> Result<ChallengeResponse, KeyholderFailure> {
        (**self).challenge()
    }
    fn deliver(&self, r: &DeliverRequest) -> Result<DeliverResponse, KeyholderFailure> {
        (**self).deliver(r)
    }
    fn commit(&self, r: &CommitRequest) -> Result<CommitResponse, KeyholderFailure> {
        (**self).commit(r)
    }
    fn release(&self, r: &ReleaseRequest) -> Result<ReleaseResponse, KeyholderFailure> {
        (**self).release(r)
    }
}

impl<K: KeyholderApi + ?Sized> KeyholderApi for Arc<K> {
    fn name(&self) -> String {
        (**self).name()
    }
    fn info(&self) -> Result<KeyholderInfo, KeyholderFailure> {
        (**self).info()
    }
    fn challenge(&self) -> Result<ChallengeResponse, KeyholderFailure> {
        (**self).challenge()
    }
    fn deliver(&self, r: &DeliverRequest) -> Result<DeliverResponse, KeyholderFailure> {
        (**self).deliver(r)
    }
    fn commit(&self, r: &CommitRequest) -> Result<CommitResponse, KeyholderFailure> {
        (**self).commit(r)
    }
    fn release(&self, r: &ReleaseRequest) -> Result<ReleaseResponse, KeyholderFailure> {
        (**self).release(r)
    }
}

// ------------------------------------------------------------------------------- HTTP

type St = State<Arc<Keyholder>>;

fn answer<T: serde::Serialize>(r: Result<T, KeyholderError>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => (
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            Json(ErrorBody {
                error: e.code.to_string(),
                message: e.message,
            }),
        )
            .into_response(),
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, KeyholderError> {
    if body.len() > MAX_REQUEST_BYTES {
        return Err(fail(413, "too_large", "request body too large"));
    }
    serde_json::from_slice(body).map_err(|e| fail(400, "bad_request", e.to_string()))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, KeyholderError> + Send + 'static,
) -> Result<T, KeyholderError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|_| Err(fail(500, "internal", "handler panicked")))
}

async fn info(State(k): St) -> Response {
    answer(blocking(move || Keyholder::info(&k)).await)
}

async fn challenge(State(k): St) -> Response {
    answer(blocking(move || Keyholder::challenge(&k)).await)
}

async fn deliver(State(k): St, body: Body) -> Response {
    answer(blocking(move || Keyholder::deliver(&k, &parse(&body)?)).await)
}

async fn commit(State(k): St, body: Body) -> Response {
    answer(blocking(move || Keyholder::commit(&k, &parse(&body)?)).await)
}

async fn release(State(k): St, body: Body) -> Response {
    answer(blocking(move || Keyholder::release(&k, &parse(&body)?)).await)
}

async fn not_found() -> Response {
    answer::<()>(Err(fail(404, "not_found", "no such endpoint")))
}

/// The router: `GET /v1/keyholder`, `GET /v1/challenge`, `POST /v1/shares`,
/// `POST /v1/shares/commit`, `POST /v1/release`.
pub fn router(keyholder: Arc<Keyholder>) -> Router {
    Router::new()
        .route("/v1/keyholder", get(info))
        .route("/v1/challenge", get(challenge))
        .route("/v1/shares", post(deliver))
        .route("/v1/shares/commit", post(commit))
        .route("/v1/release", post(release))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(2 * MAX_REQUEST_BYTES))
        .with_state(keyholder)
}

/// A running keyholder service; dropping it stops it.
#[derive(Debug)]
pub struct Served {
    /// Where it listens.
    pub addr: SocketAddr,
    server: Server,
}

impl Served {
    /// `http://addr` or `https://addr`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Block until SIGTERM or SIGINT, then stop gracefully.
    pub fn wait(&self) {
        if let Err(e) = self.server.wait_for_signal() {
            tracing::error!(error = %e, "keyholder service stopped on an error");
        }
    }
}

/// Serve `keyholder` on `listen` (HTTPS with `tls`), on its own small runtime.
pub fn serve(
    keyholder: Arc<Keyholder>,
    listen: SocketAddr,
    tls: Option<&TlsFiles>,
) -> Result<Served, KeyholderError> {
    let opts = ServeOptions {
        worker_threads: 1,
        ..ServeOptions::default()
    };
    let server = Server::start(listen, tls, router(keyholder), opts)
        .map_err(|e| fail(500, "serve", e.to_string()))?;
    Ok(Served {
        addr: server.addr(),
        server,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

    use sealbridge_enclave::{
        EnclavePolicy,
        boundary::{BOUNDARY_VERSION, Request, Response},
        custody::Custody,
        policy::simulated_measurement,
        session::Session,
    };
    use sealbridge_programs::netting::NettingConfig;

    fn netting_config() -> NettingConfig {
        NettingConfig {
            participants: vec![],
            tokens: vec![Address::repeat_byte(0xee)],
        }
    }

    use super::*;
    use crate::chain::FixedChain;

    const NOW: u64 = 1_800_000_000;

    fn target() -> SettlementTarget {
        SettlementTarget {
            chain_id: 31337,
            settlement: Address::repeat_byte(0x5e),
        }
    }

    fn allowed_m() -> B256 {
        simulated_measurement("sealbridge/netting/v1")
    }

    /// The deployment as the keyholders read it: the netting measurement allowed, nothing
    /// settled yet, `ENCLAVE` registered and Active.
    fn chain() -> SharedDeploymentChain {
        Box::new(FixedChain {
            allowed: vec![allowed_m()],
            enclave: Address::ZERO,
            active: Vec::new(),
        })
    }

    struct Fixture {
        _dirs: Vec<tempfile::TempDir>,
        holders: Vec<Keyholder>,
        policy: EnclavePolicy,
        clock: Arc<AtomicU64>,
    }

    fn fixture() -> Fixture {
        let clock = Arc::new(AtomicU64::new(NOW));
        let mut dirs = Vec::new();
        let mut holders = Vec::new();
        let mut ids = Vec::new();
        for _ in 0..3 {
            let d = tempfile::tempdir().unwrap();
            let (id, created) = init(d.path()).unwrap();
            assert!(created);
            assert_eq!(init(d.path()).unwrap(), (id, false));
            assert_eq!(public_id(d.path()).unwrap(), id);
            ids.push(id);
            let c = clock.clone();
            holders.push(
                Keyholder::open(d.path(), target(), Policy::insecure_dev(), Some(chain()))
                    .unwrap()
                    .with_clock(move || c.load(Relaxed)),
            );
            dirs.push(d);
        }
        let policy = EnclavePolicy::new(netting_config(), 4).with_custody(Custody {
            threshold: 2,
            keyholders: ids,
        });
        Fixture {
            _dirs: dirs,
            holders,
            policy,
            clock,
        }
    }

    fn session() -> Session {
        let mut s = Session::custody(Box::new(|| Box::new(OsRng)));
        assert!(matches!(
            s.handle(Request::Hello {
                version: BOUNDARY_VERSION
            }),
            Response::Hello { .. }
        ));
        s
    }

    /// A dealing's delivery requests, one per keyholder.
    fn dealing(f: &Fixture, s: &mut Session) -> Vec<DeliverRequest> {
        let r = s.handle(Request::CustodyDeal {
            policy: f.policy.clone(),
            target: target(),
            now: NOW,
        });
        deliveries(r)
    }

    /// The delivery requests of a `Shares` answer, one per keyholder.
    fn deliveries(r: Response) -> Vec<DeliverRequest> {
        let Response::Shares {
            generation,
            sealed,
            tee,
            evidence,
            dealer,
            commit_hash,
            ..
        } = r
        else {
            panic!("{r:?}")
        };
        let dealing: Vec<B256> = sealed
            .iter()
            .map(|s| B256::from(custody::sealed_digest(s)))
            .collect();
        sealed
            .into_iter()
            .map(|s| DeliverRequest {
                chain_id: 31337,
                settlement: Address::repeat_byte(0x5e),
                generation,
                sealed: Bytes::from(s),
                dealing: dealing.clone(),
                tee,
                evidence: Bytes::from(evidence.clone()),
                dealer,
                commit_hash,
            })
            .collect()
    }

    fn release_request(k: &Keyholder, s: &mut Session) -> ReleaseRequest {
        let c = k.challenge().unwrap().challenge;
        let Response::RecoveryEvidence {
            recovery_key,
            tee,
            evidence,
        } = s.handle(Request::RecoveryEvidence {
            target: target(),
            challenge: c.to_vec(),
            now: NOW,
        })
        else {
            panic!()
        };
        ReleaseRequest {
            chain_id: 31337,
            settlement: Address::repeat_byte(0x5e),
            recovery_key: B256::from(recovery_key),
            challenge: c,
            tee,
            evidence: Bytes::from(evidence),
        }
    }

    fn delivered() -> (Fixture, Vec<DeliverRequest>) {
        let f = fixture();
        let mut s = session();
        let reqs = dealing(&f, &mut s);
        for (k, r) in f.holders.iter().zip(&reqs) {
            let d = k.deliver(r).unwrap();
            assert!(!d.already_held);
            assert_eq!(d.generation, 0);
        }
        (f, reqs)
    }

    #[test]
    fn deliver_then_release_to_an_attested_recovery_key_recovers_the_root() {
        let (f, reqs) = delivered();
        // Delivering the same share again is a no-op.
        assert!(f.holders[0].deliver(&reqs[0]).unwrap().already_held);
        let mut successor = session();
        let mut released = Vec::new();
        for k in &f.holders[..2] {
            let r = release_request(k, &mut successor);
            let out = k.release(&r).unwrap();
            assert_eq!(out.shares.len(), 1);
            released.push(out.shares[0].sealed.to_vec());
        }
        let r = successor.handle(Request::RecoverRoot {
            policy: f.policy.clone(),
            target: target(),
            released,
        });
        let Response::RootRecovered { roots, refused } = r else {
            panic!("{r:?}")
        };
        assert!(refused.is_empty());
        assert_eq!(roots.len(), 1);
        assert_eq!(roots[0].2, vec![1, 2]);
        // The successor can now boot nothing new: it holds candidates for a Restore only.
        assert!(f.holders[2].info().unwrap().generations == vec![0]);
    }

    #[test]
    fn delivery_refusals_change_nothing() {
        let f = fixture();
        let mut s = session();
        let reqs = dealing(&f, &mut s);
        let k = &f.holders[0];
        let code = |r: Result<DeliverResponse, KeyholderError>| r.unwrap_err().code;
        // Another deployment.
        let mut r = reqs[0].clone();
        r.settlement = Address::repeat_byte(1);
        assert_eq!(code(k.deliver(&r)), "wrong_deployment");
        // Another keyholder's share.
        assert_eq!(code(k.deliver(&reqs[1])), "bad_share");
        // Garbage.
        let mut r = reqs[0].clone();
        r.sealed = Bytes::from(vec![7u8; 40]);
        assert_eq!(code(k.deliver(&r)), "bad_share");
        // Not at its index in the dealing.
        let mut r = reqs[0].clone();
        r.dealing.swap(0, 1);
        assert_eq!(code(k.deliver(&r)), "not_in_dealing");
        // A dealing list other than the one the evidence binds.
        let mut r = reqs[0].clone();
        r.dealing[2] = B256::repeat_byte(9);
        assert_eq!(code(k.deliver(&r)), "wrong_binding");
        // The generation claimed differs from the share's.
        let mut r = reqs[0].clone();
        r.generation = 5;
        assert_eq!(code(k.deliver(&r)), "bad_share");
        // Evidence that does not verify.
        let mut r = reqs[0].clone();
        r.evidence = Bytes::from(vec![1, 2, 3]);
        assert_eq!(code(k.deliver(&r)), "refused");
        assert!(k.generations().unwrap().is_empty());
        // A measurement the chain does not allow.
        let deny = Keyholder::open(
            f._dirs[0].path(),
            target(),
            Policy::insecure_dev(),
            Some(Box::new(FixedChain::default())),
        )
        .unwrap()
        .with_clock(|| NOW);
        let e = deny.deliver(&reqs[0]).unwrap_err();
        assert_eq!((e.status, e.code), (403, "measurement_not_allowed"));
        // The chain cannot be read.
        let down = Keyholder::open(f._dirs[0].path(), target(), Policy::insecure_dev(), None)
            .unwrap()
            .with_clock(|| NOW);
        assert_eq!(down.deliver(&reqs[0]).unwrap_err().status, 503);
        // Simulated evidence under a production appraisal policy.
        let strict = Keyholder::open(
            f._dirs[0].path(),
            target(),
            Policy::default(),
            Some(chain()),
        )
        .unwrap()
        .with_clock(|| NOW);
        assert_eq!(strict.deliver(&reqs[0]).unwrap_err().code, "refused");
        assert!(k.generations().unwrap().is_empty());
        // Stored once; a different dealing of the same generation never overwrites it.
        k.deliver(&reqs[0]).unwrap();
        let mut other = session();
        let again = dealing(&f, &mut other);
        let e = k.deliver(&again[0]).unwrap_err();
        assert_eq!((e.status, e.code), (409, "conflict"));
        assert_eq!(k.generations().unwrap(), vec![0]);
    }

    #[test]
    fn release_refusals_release_nothing() {
        let (f, _) = delivered();
        let k = &f.holders[0];
        let mut s = session();
        let code = |r: Result<ReleaseResponse, KeyholderError>| r.unwrap_err().code;
        // Another deployment.
        let mut r = release_request(k, &mut s);
        r.settlement = Address::repeat_byte(2);
        assert_eq!(code(k.release(&r)), "wrong_deployment");
        // A challenge never issued.
        let mut r = release_request(k, &mut s);
        r.challenge = Bytes::from(vec![0u8; 32]);
        assert_eq!(code(k.release(&r)), "stale_challenge");
        // Evidence bound to another recovery key (the challenge is used up by the attempt).
        let mut r = release_request(k, &mut s);
        let genuine = r.clone();
        r.recovery_key = B256::repeat_byte(0x42);
        assert_eq!(code(k.release(&r)), "wrong_binding");
        assert_eq!(code(k.release(&genuine)), "stale_challenge");
        // Expired.
        let r = release_request(k, &mut s);
        f.clock.fetch_add(CHALLENGE_TTL_SECS + 1, Relaxed);
        assert_eq!(code(k.release(&r)), "stale_challenge");
        f.clock.store(NOW, Relaxed);
        // Evidence that does not verify.
        let mut r = release_request(k, &mut s);
        r.evidence = Bytes::from(vec![9; 10]);
        assert_eq!(code(k.release(&r)), "refused");
        // A measurement the chain does not allow (forged simulated quote for another program).
        let mut r = release_request(k, &mut s);
        r.evidence = Bytes::from(
            sealbridge_attest::danger::SimulatedQuote {
                measurement: sealbridge_attest::Measurement(simulated_measurement("evil").0),
                report_data: sealbridge_attest::keyholder_request_report_data(
                    r.recovery_key.as_slice(),
                    &custody::deployment_bytes(&target()),
                    &r.challenge,
                ),
                issued_at: NOW,
                debug: false,
            }
            .sign(),
        );
        let e = k.release(&r).unwrap_err();
        assert_eq!((e.status, e.code), (403, "measurement_not_allowed"));
        // The good request still works, once.
        let r = release_request(k, &mut s);
        assert_eq!(k.release(&r).unwrap().shares.len(), 1);
        assert_eq!(code(k.release(&r)), "stale_challenge");
    }

    /// Review (custody): a flood of `GET /v1/challenge` (unauthenticated) used to evict a
    /// recovering enclave's outstanding challenge from a table of 1,024. Challenges are now
    /// stateless until used: the first one still releases after 5,000 more were issued; a
    /// challenge with a forged tag, a reused one and an expired one are refused.
    #[test]
    fn a_challenge_flood_evicts_nothing_and_forged_or_reused_challenges_are_refused() {
        let code = |r: Result<ReleaseResponse, KeyholderError>| r.unwrap_err().code;
        let (f, _) = delivered();
        let k = &f.holders[0];
        let mut s = session();
        let r = release_request(k, &mut s);
        for _ in 0..5_000 {
            k.challenge().unwrap();
        }
        let mut forged = r.clone();
        let mut c = forged.challenge.to_vec();
        c[31] ^= 1;
        forged.challenge = Bytes::from(c);
        assert_eq!(code(k.release(&forged)), "stale_challenge");
        assert_eq!(k.release(&r).unwrap().shares.len(), 1);
        assert_eq!(code(k.release(&r)), "stale_challenge");
        // Issued at a time past its lifetime (the clock moved on).
        let late = fixture();
        let old = release_request(&late.holders[0], &mut session());
        late.clock.store(NOW + CHALLENGE_TTL_SECS + 1, Relaxed);
        let e = late.holders[0].release(&old).unwrap_err();
        assert!(e.to_string().contains("expired"), "{e}");
    }

    fn commit(g: u64, token: B256) -> CommitRequest {
        CommitRequest {
            chain_id: 31337,
            settlement: Address::repeat_byte(0x5e),
            generation: g,
            commit_token: token,
        }
    }

    /// The deployment after `enclave` settled its first statement.
    fn live(enclave: Address) -> FixedChain {
        FixedChain {
            allowed: vec![allowed_m()],
            enclave,
            active: vec![enclave],
        }
    }

    /// A running custody enclave (dealt, booted) and its signing address.
    fn running(f: &Fixture) -> (Session, Address) {
        let mut s = session();
        let _ = dealing(f, &mut s);
        let r = s.handle(Request::Boot {
            policy: f.policy.clone(),
            target: target(),
            now: NOW,
        });
        assert_eq!(r, Response::Ack);
        let a = s.enclave().unwrap().signer_address();
        (s, a)
    }

    /// A dealing of `generation` made outside any enclave, with evidence forged for the allowed
    /// measurement (the simulated TEE allows that) naming `dealer`: what an attacker with
    /// evidence of an allowed measurement can deliver.
    fn forged(f: &Fixture, generation: u64, dealer: Address) -> Vec<DeliverRequest> {
        let c = f.policy.custody.as_ref().unwrap();
        let dealt = custody::deal(c, &target(), generation, &mut OsRng).unwrap();
        let digests: Vec<[u8; 32]> = dealt
            .sealed
            .iter()
            .map(|s| custody::sealed_digest(s))
            .collect();
        let commit_hash = alloy_primitives::keccak256([7u8; 32]);
        let evidence = sealbridge_attest::danger::SimulatedQuote {
            measurement: sealbridge_attest::Measurement(allowed_m().0),
            report_data: sealbridge_attest::keyholder_deal_report_data(
                &custody::dealing_digest(&digests),
                &custody::deployment_bytes(&target()),
                generation,
                dealer.as_slice(),
                commit_hash.as_slice(),
            ),
            issued_at: NOW,
            debug: false,
        }
        .sign();
        deliveries(Response::Shares {
            generation,
            root_id: B256::from(dealt.root_id),
            sealed: dealt.sealed,
            tee: 0,
            evidence,
            dealer,
            commit_hash,
        })
    }

    #[test]
    fn nothing_held_is_404_and_a_first_dealing_is_never_committed() {
        let f = fixture();
        let k = &f.holders[0];
        let mut s = session();
        let r = release_request(k, &mut s);
        let e = k.release(&r).unwrap_err();
        assert_eq!((e.status, e.code), (404, "no_share"));
        assert_eq!(
            k.commit(&commit(0, B256::ZERO)).unwrap_err().code,
            "not_held"
        );
        let reqs = dealing(&f, &mut session());
        k.deliver(&reqs[0]).unwrap();
        // The first dealing binds no commit token: nothing commits it (there is nothing below).
        let e = k.commit(&commit(0, B256::ZERO)).unwrap_err();
        assert_eq!((e.status, e.code), (409, "not_committable"));
        assert_eq!(k.generations().unwrap(), vec![0]);
    }

    #[test]
    fn a_rotation_keeps_the_old_generation_until_committed_with_its_token_then_refuses_it() {
        let (f, old) = delivered();
        let (mut s, enclave) = running(&f);
        let chain = live(enclave);
        let reqs = deliveries(s.handle(Request::RotateRoot {
            now: NOW,
            without: Vec::new(),
            at_least: 0,
        }));
        assert_eq!(reqs[0].generation, 1);
        let k = &f.holders[0];
        k.deliver_with(&reqs[0], &chain).unwrap();
        assert_eq!(k.generations().unwrap(), vec![0, 1]);
        let mut successor = session();
        let r = release_request(k, &mut successor);
        let out = k.release(&r).unwrap();
        assert_eq!(
            out.shares.iter().map(|s| s.generation).collect::<Vec<_>>(),
            vec![1, 0]
        );
        // H3: a commit without the token the dealing bound drops nothing.
        for token in [B256::ZERO, B256::repeat_byte(7), reqs[0].commit_hash] {
            let e = k.commit(&commit(1, token)).unwrap_err();
            assert_eq!((e.status, e.code), (403, "bad_commit_token"));
        }
        assert_eq!(k.generations().unwrap(), vec![0, 1]);
        // The enclave reveals the token once it seals under generation 1.
        let Response::RootRotated {
            generation: 1,
            commit_token,
        } = s.handle(Request::CommitRootRotation)
        else {
            panic!()
        };
        let c = k.commit(&commit(1, commit_token)).unwrap();
        assert_eq!((c.kept, c.dropped), (vec![1], vec![0]));
        // Generation 0 cannot come back.
        let e = k.deliver(&old[0]).unwrap_err();
        assert_eq!((e.status, e.code), (409, "stale_generation"));
    }

    /// A keyholder left out of rotations (`rotate-root --without`), or wiped and restarted
    /// with the same identity, takes a later generation from the deployment's enclave: skipping
    /// is allowed, going back is not (`stale_generation`), and a generation not held cannot be
    /// committed. (The dealings here carry forged simulated evidence naming the deployment's
    /// enclave: the simulated TEE's quotes are forgeable, the residual the appraisal policy
    /// closes; the dealer check itself is `h3_a_rotation_from_another_allowed_enclave_…`.)
    #[test]
    fn a_keyholder_left_behind_takes_a_later_generation_and_never_an_older_one() {
        let (f, _) = delivered();
        let (_, enclave) = running(&f);
        let chain = live(enclave);
        let k = &f.holders[0];
        let later = forged(&f, 3, enclave);
        k.deliver_with(&later[0], &chain).unwrap();
        assert_eq!(k.generations().unwrap(), vec![0, 3]);
        // Not held: nothing to commit, nothing dropped.
        let e = k.commit(&commit(1000, B256::repeat_byte(7))).unwrap_err();
        assert_eq!(e.code, "not_held");
        // Committed (the forged dealing bound the token [7; 32]): 3 is in force, 0 dropped.
        let c = k.commit(&commit(3, B256::repeat_byte(7))).unwrap();
        assert_eq!((c.kept, c.dropped), (vec![3], vec![0]));
        // Older generations cannot come back.
        for g in [1, 2, 3] {
            let e = k
                .deliver_with(&forged(&f, g, enclave)[0], &chain)
                .unwrap_err();
            assert!(
                e.code == "stale_generation" || e.code == "conflict",
                "{g}: {e}"
            );
        }
        assert_eq!(k.generations().unwrap(), vec![3]);
        // A keyholder holding nothing (wiped) takes a rotation from the deployment's enclave.
        let g = fixture();
        g.holders[0]
            .deliver_with(&forged(&g, 5, enclave)[0], &chain)
            .unwrap();
        assert_eq!(g.holders[0].generations().unwrap(), vec![5]);
    }

    #[test]
    fn h3_a_rotation_from_another_allowed_enclave_is_refused_and_changes_nothing() {
        let (f, _) = delivered();
        let (_, deployment_enclave) = running(&f);
        // Another enclave of the same, allowed measurement, running and rotating its own root.
        let (mut other, other_address) = running(&f);
        assert_ne!(other_address, deployment_enclave);
        let reqs = deliveries(other.handle(Request::RotateRoot {
            now: NOW,
            without: Vec::new(),
            at_least: 0,
        }));
        let k = &f.holders[0];
        // The deployment settled under its enclave: any other dealer is refused.
        let e = k
            .deliver_with(&reqs[0], &live(deployment_enclave))
            .unwrap_err();
        assert_eq!((e.status, e.code), (403, "not_deployment_enclave"), "{e}");
        // Before the first settled statement: no rotation at all — not even from an Active
        // registered enclave of the allowed measurement (review: it could otherwise rotate and
        // commit, and every keyholder would drop the real generation 0).
        let unsettled = FixedChain {
            allowed: vec![allowed_m()],
            enclave: Address::ZERO,
            active: vec![deployment_enclave, other_address],
        };
        let e = k.deliver_with(&reqs[0], &unsettled).unwrap_err();
        assert_eq!((e.status, e.code), (403, "not_deployment_enclave"), "{e}");
        // Claiming to be the deployment's enclave: the evidence binds the real dealer.
        let mut lie = reqs[0].clone();
        lie.dealer = deployment_enclave;
        let e = k.deliver_with(&lie, &live(deployment_enclave)).unwrap_err();
        assert_eq!(e.code, "wrong_binding", "{e}");
        // A rotation that names no dealer.
        let e = k
            .deliver_with(&forged(&f, 1, Address::ZERO)[0], &unsettled)
            .unwrap_err();
        assert_eq!(e.code, "not_deployment_enclave", "{e}");
        // The chain cannot be read.
        let e = k.deliver_with(&reqs[0], &NoChain).unwrap_err();
        assert_eq!(e.status, 503);
        assert_eq!(k.generations().unwrap(), vec![0]);
        // A first dealing once the deployment settled (a keyholder that holds nothing).
        let g = fixture();
        let first = dealing(&g, &mut session());
        let e = g.holders[0]
            .deliver_with(&first[0], &live(deployment_enclave))
            .unwrap_err();
        assert_eq!((e.status, e.code), (409, "deployment_live"), "{e}");
        assert!(g.holders[0].generations().unwrap().is_empty());
        // The control: the same rotation is stored when its dealer is the deployment's enclave.
        k.deliver_with(&reqs[0], &live(other_address)).unwrap();
        assert_eq!(k.generations().unwrap(), vec![0, 1]);
    }

    /// A held share is never overwritten, not even an uncommitted rotation's by the
    /// deployment's enclave (review: a discarded dealing replayed would displace the committed
    /// one's share at the same generation). A retried rotation comes at a fresh generation.
    #[test]
    fn a_held_share_is_never_overwritten_and_a_retry_comes_at_a_fresh_generation() {
        let (f, _) = delivered();
        let (mut s, enclave) = running(&f);
        let chain = live(enclave);
        let k = &f.holders[0];
        let first = deliveries(s.handle(Request::RotateRoot {
            now: NOW,
            without: Vec::new(),
            at_least: 0,
        }));
        k.deliver_with(&first[0], &chain).unwrap();
        // Another allowed enclave: its generation 1 meets the held share, a later one its
        // dealer check.
        let (mut other, _) = running(&f);
        for (at_least, code) in [(0, "conflict"), (5, "not_deployment_enclave")] {
            let theirs = deliveries(other.handle(Request::RotateRoot {
                now: NOW,
                without: Vec::new(),
                at_least,
            }));
            let e = k.deliver_with(&theirs[0], &chain).unwrap_err();
            assert_eq!(e.code, code, "{e}");
        }
        // Another dealing of generation 1 by the deployment's enclave (a restart lost the
        // pending one): refused, the held share untouched.
        let again = forged(&f, 1, enclave);
        let e = k.deliver_with(&again[0], &chain).unwrap_err();
        assert_eq!((e.status, e.code), (409, "conflict"), "{e}");
        assert!(k.load_share(1).unwrap() == open(k, &first[0]));
        // The retry the host asks for above what is held: generation 2, a fresh dealing
        // (the pending generation-1 dealing is replaced in the enclave).
        let retry = deliveries(s.handle(Request::RotateRoot {
            now: NOW,
            without: Vec::new(),
            at_least: 2,
        }));
        assert_eq!(retry[0].generation, 2);
        k.deliver_with(&retry[0], &chain).unwrap();
        let Response::RootRotated {
            generation: 2,
            commit_token,
        } = s.handle(Request::CommitRootRotation)
        else {
            panic!()
        };
        let c = k.commit(&commit(2, commit_token)).unwrap();
        assert_eq!((c.kept, c.dropped), (vec![2], vec![0, 1]));
        // The discarded generation-1 dealing replayed afterwards: below the one in force.
        let e = k.deliver_with(&first[0], &chain).unwrap_err();
        assert_eq!((e.status, e.code), (409, "stale_generation"), "{e}");
        // The host cannot push the generation out of reach.
        let far = s.handle(Request::RotateRoot {
            now: NOW,
            without: Vec::new(),
            at_least: u64::MAX,
        });
        assert!(
            matches!(&far, Response::Error(sealbridge_enclave::boundary::BoundaryError::Refused(w)) if w.contains("above the next one")),
            "{far:?}"
        );
    }

    fn open(k: &Keyholder, r: &DeliverRequest) -> Share {
        custody::open_share(KEYHOLDER_SHARE_CONTEXT, &r.sealed, &k.sk, &target()).unwrap()
    }
}
