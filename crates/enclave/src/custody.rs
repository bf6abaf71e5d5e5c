//! Key custody across keyholders (issue 12 part 3; docs/PROTOCOL.md "Key custody").
//!
//! The deployment's sealing root (every journal record and snapshot chunk derives its key from
//! it) is generated inside the enclave and split k-of-n with Shamir's scheme over GF(2^8), byte
//! by byte; each share is HPKE-sealed to one keyholder named in the policy
//! ([`Custody`]). No keyholder and not the host holds the root. A successor enclave (same
//! measurement, another machine) collects k shares released to its one-time recovery key and
//! recombines the root; the share's root id (`keccak256("sealbridge/v1/root-id" ‖ root)`)
//! checks the result, so a bad share is detected and other k-subsets are tried.
//!
//! Share plaintext (103 bytes):
//!
//! ```text
//!   version 0x01 ‖ index (1..=n) ‖ threshold k ‖ generation u64 BE ‖ chain id u64 BE
//!   ‖ settlement address (20) ‖ root id (32) ‖ share value (32)
//! ```
//!
//! Sealed share: `enc (32) ‖ HPKE ciphertext` (base mode, DHKEM(X25519, HKDF-SHA256),
//! HKDF-SHA256, AES-256-GCM; aad empty); `info` = the purpose label ‖ [`deployment_bytes`]:
//! `sealbridge/v1/keyholder-share` from the enclave to a keyholder,
//! `sealbridge/v1/keyholder-release` from a keyholder to a recovery key.
//!
//! Sans-IO: no clock, no I/O; randomness is passed in.

use alloy_primitives::{Address, keccak256};
use rand_core::CryptoRngCore;
use sealbridge_proto::contexts::{
    KEYHOLDER_RELEASE_CONTEXT, KEYHOLDER_SHARE_CONTEXT, ROOT_ID_CONTEXT,
};
use sealbridge_seal::{
    at_rest::RootSecret,
    hpke::{self, Aead, N_ENC},
    keys::{KemPublicKey, KemSecretKey},
};
use zeroize::Zeroizing;

use crate::SettlementTarget;

/// Share plaintext format version.
pub const SHARE_VERSION: u8 = 1;
/// Length of a share's plaintext.
pub const SHARE_LEN: usize = 1 + 1 + 1 + 8 + 8 + 20 + 32 + 32;
/// Most keyholders a policy may name.
pub const MAX_KEYHOLDERS: usize = 16;
/// Least threshold: no single keyholder may hold the root.
pub const MIN_THRESHOLD: u8 = 2;
/// The HPKE AEAD of sealed shares.
const AEAD: Aead = Aead::Aes256Gcm;

/// Why a custody operation failed. Messages name the rule, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CustodyError {
    /// The custody part of a policy is not usable.
    #[error("custody policy: {0}")]
    Policy(String),
    /// A share (sealed or plain) is malformed or does not open under this key.
    #[error("share: {0}")]
    BadShare(&'static str),
    /// A share is for another deployment.
    #[error("share is for another deployment")]
    WrongDeployment,
    /// Fewer than k consistent shares: no root.
    #[error("not enough valid shares: {0}")]
    NotEnough(String),
}

/// One keyholder as the policy commits to it: its HPKE (X25519) public key and its TEE kind
/// (0 simulated; as in `Response::Evidence`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyholderId {
    /// HPKE public key shares are sealed to.
    pub hpke_pk: [u8; 32],
    /// TEE kind of the keyholder.
    pub tee: u8,
}

/// Key custody in a policy: `threshold` of `keyholders` recover the root.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Custody {
    /// k.
    pub threshold: u8,
    /// The n keyholders, in share order (share index = position + 1).
    pub keyholders: Vec<KeyholderId>,
}

impl Custody {
    /// Refuse a custody rule that cannot hold: `2 <= k <= n <= 16`, distinct non-zero keys.
    pub fn validate(&self) -> Result<(), CustodyError> {
        let n = self.keyholders.len();
        if self.threshold < MIN_THRESHOLD {
            return Err(CustodyError::Policy(format!(
                "threshold {} is below {MIN_THRESHOLD}: one keyholder would hold the root",
                self.threshold
            )));
        }
        if usize::from(self.threshold) > n {
            return Err(CustodyError::Policy(format!(
                "threshold {} exceeds the {n} keyholders",
                self.threshold
            )));
        }
        if n > MAX_KEYHOLDERS {
            return Err(CustodyError::Policy(format!(
                "{n} keyholders, at most {MAX_KEYHOLDERS}"
            )));
        }
        for (i, a) in self.keyholders.iter().enumerate() {
            if a.hpke_pk == [0; 32] {
                return Err(CustodyError::Policy(format!(
                    "keyholder {} has a zero key",
                    i + 1
                )));
            }
            if self
                .keyholders
                .iter()
                .skip(i + 1)
                .any(|b| b.hpke_pk == a.hpke_pk)
            {
                return Err(CustodyError::Policy(format!(
                    "keyholder {} appears twice",
                    i + 1
                )));
            }
        }
        Ok(())
    }

    /// Canonical bytes (part of the policy bytes): `k ‖ n u8 ‖ (hpke_pk 32 ‖ tee u8)*`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.threshold);
        out.push(u8::try_from(self.keyholders.len()).unwrap_or(u8::MAX));
        for k in &self.keyholders {
            out.extend_from_slice(&k.hpke_pk);
            out.push(k.tee);
        }
    }
}

/// `keccak256` of a custody rule's canonical bytes ([`Custody::encode`]): what a custody root is
/// bound to (a root dealt or recovered under one rule boots no policy naming another).
pub fn custody_hash(c: &Custody) -> [u8; 32] {
    let mut out = Vec::new();
    c.encode(&mut out);
    keccak256(out).0
}

/// The deployment a share belongs to: `chain id u64 BE ‖ settlement address`.
pub fn deployment_bytes(target: &SettlementTarget) -> [u8; 28] {
    let mut out = [0u8; 28];
    let (a, b) = out.split_at_mut(8);
    a.copy_from_slice(&target.chain_id.to_be_bytes());
    b.copy_from_slice(target.settlement.as_slice());
    out
}

/// The digest a dealing's evidence binds: `keccak256(keccak256(sealed_1) ‖ … ‖
/// keccak256(sealed_n))` over the sealed shares in policy order.
pub fn dealing_digest(sealed_digests: &[[u8; 32]]) -> [u8; 32] {
    keccak256(sealed_digests.concat()).0
}

/// `keccak256` of one sealed share (an entry of [`dealing_digest`]).
pub fn sealed_digest(sealed: &[u8]) -> [u8; 32] {
    keccak256(sealed).0
}

/// `keccak256("sealbridge/v1/root-id" ‖ root)`.
pub fn root_id(root: &[u8; 32]) -> [u8; 32] {
    keccak256([ROOT_ID_CONTEXT, root.as_slice()].concat()).0
}

/// One share of a root. `Debug` does not show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Share {
    /// x coordinate, `1..=n` (the keyholder's position in the policy + 1).
    pub index: u8,
    /// k.
    pub threshold: u8,
    /// Root generation (0 at dealing, +1 per rotation).
    pub generation: u64,
    /// The deployment.
    pub target: SettlementTarget,
    /// The root's id.
    pub root_id: [u8; 32],
    value: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Share")
            .field("index", &self.index)
            .field("threshold", &self.threshold)
            .field("generation", &self.generation)
            .field("root_id", &hex::encode(self.root_id))
            .finish_non_exhaustive()
    }
}

impl Share {
    /// The plaintext bytes (see the module documentation).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(SHARE_LEN));
        out.push(SHARE_VERSION);
        out.push(self.index);
        out.push(self.threshold);
        out.extend_from_slice(&self.generation.to_be_bytes());
        out.extend_from_slice(&deployment_bytes(&self.target));
        out.extend_from_slice(&self.root_id);
        out.extend_from_slice(self.value.as_slice());
        out
    }

    /// Strict inverse of [`Share::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CustodyError> {
        let bad = CustodyError::BadShare("malformed share");
        if bytes.len() != SHARE_LEN {
            return Err(bad);
        }
        let (head, rest) = bytes.split_at(3);
        let [version, index, threshold] = <[u8; 3]>::try_from(head).map_err(|_| bad.clone())?;
        if version != SHARE_VERSION || index == 0 || threshold < MIN_THRESHOLD {
            return Err(bad);
        }
        let (generation, rest) = rest.split_at(8);
        let (chain_id, rest) = rest.split_at(8);
        let (settlement, rest) = rest.split_at(20);
        let (id, value) = rest.split_at(32);
        let u64be = |b: &[u8]| <[u8; 8]>::try_from(b).map(u64::from_be_bytes);
        Ok(Self {
            index,
            threshold,
            generation: u64be(generation).map_err(|_| bad.clone())?,
            target: SettlementTarget {
                chain_id: u64be(chain_id).map_err(|_| bad.clone())?,
                settlement: Address::from_slice(settlement),
            },
            root_id: <[u8; 32]>::try_from(id).map_err(|_| bad.clone())?,
            value: Zeroizing::new(<[u8; 32]>::try_from(value).map_err(|_| bad)?),
        })
    }
}

// ------------------------------------------------------------------ GF(2^8), AES polynomial

/// Multiplication in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1, without tables or branches on
/// the operands (no secret-dependent memory access).
fn gf_mul(mut a: u8, mut b: u8) -> u8 {
    let mut p = 0u8;
    for _ in 0..8 {
        p ^= a & 0u8.wrapping_sub(b & 1);
        let carry = 0u8.wrapping_sub(a >> 7);
        a = (a << 1) ^ (0x1b & carry);
        b >>= 1;
    }
    p
}

/// `a^254 = a^-1` (0 for 0).
fn gf_inv(a: u8) -> u8 {
    let mut result = 1u8;
    let mut base = a;
    let mut e = 254u8;
    while e > 0 {
        if e & 1 == 1 {
            result = gf_mul(result, base);
        }
        base = gf_mul(base, base);
        e >>= 1;
    }
    result
}

/// Split `secret` into `n` shares, any `k` of which recover it (random polynomial of degree
/// k−1 per byte, evaluated at x = 1..=n). Returns the share values, index i+1 at position i.
fn split_bytes(
    secret: &[u8; 32],
    k: u8,
    n: u8,
    rng: &mut impl CryptoRngCore,
) -> Vec<Zeroizing<[u8; 32]>> {
    let mut coefficients: Vec<Zeroizing<[u8; 32]>> = Vec::new();
    for _ in 1..k {
        let mut c = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(c.as_mut_slice());
        coefficients.push(c);
    }
    (1..=n)
        .map(|x| {
            let mut y = Zeroizing::new([0u8; 32]);
            for (b, out) in y.iter_mut().enumerate() {
                // Horner: ((c_{k-1} x + c_{k-2}) x + ...) x + secret.
                let mut acc = 0u8;
                for c in coefficients.iter().rev() {
                    acc = gf_mul(acc, x) ^ c.get(b).copied().unwrap_or(0);
                }
                *out = gf_mul(acc, x) ^ secret.get(b).copied().unwrap_or(0);
            }
            y
        })
        .collect()
}

/// Lagrange interpolation at 0 of the given shares (no check: with fewer than k shares, or a
/// bad one, the result is some other 32 bytes). Distinct non-zero indices are required.
pub fn interpolate(shares: &[&Share]) -> Result<Zeroizing<[u8; 32]>, CustodyError> {
    for (i, a) in shares.iter().enumerate() {
        if a.index == 0 || shares.iter().skip(i + 1).any(|b| b.index == a.index) {
            return Err(CustodyError::BadShare("repeated or zero share index"));
        }
    }
    let mut out = Zeroizing::new([0u8; 32]);
    for (i, si) in shares.iter().enumerate() {
        // l_i(0) = prod_{j != i} x_j / (x_j - x_i); subtraction is xor.
        let mut num = 1u8;
        let mut den = 1u8;
        for (j, sj) in shares.iter().enumerate() {
            if i != j {
                num = gf_mul(num, sj.index);
                den = gf_mul(den, sj.index ^ si.index);
            }
        }
        let l = gf_mul(num, gf_inv(den));
        for (o, v) in out.iter_mut().zip(si.value.iter()) {
            *o ^= gf_mul(*v, l);
        }
    }
    Ok(out)
}

/// A freshly dealt root: the root (for the enclave's keys), its id, and the shares sealed to
/// the policy's keyholders (position i for keyholder i).
pub struct Dealt {
    /// The new root.
    pub root: RootSecret,
    /// Its id.
    pub root_id: [u8; 32],
    /// Generation.
    pub generation: u64,
    /// `enc ‖ ct` per keyholder, in policy order.
    pub sealed: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Dealt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dealt")
            .field("root_id", &hex::encode(self.root_id))
            .field("generation", &self.generation)
            .field("sealed", &self.sealed.len())
            .finish_non_exhaustive()
    }
}

/// Generate a root inside, split it k-of-n under `custody` and seal share i to keyholder i
/// (`sealbridge/v1/keyholder-share`).
pub fn deal(
    custody: &Custody,
    target: &SettlementTarget,
    generation: u64,
    rng: &mut impl CryptoRngCore,
) -> Result<Dealt, CustodyError> {
    deal_except(custody, target, generation, &[], rng)
}

/// As [`deal`], with no share sealed for the keyholders at the positions `without` (0-based,
/// policy order): their entry of `sealed` is empty, and the share value for them is never
/// sealed to anyone (a compromised keyholder left out of a rotation; docs/PROTOCOL.md §13).
/// Refused when a position is out of range or fewer than k keyholders would get a share.
pub fn deal_except(
    custody: &Custody,
    target: &SettlementTarget,
    generation: u64,
    without: &[u8],
    rng: &mut impl CryptoRngCore,
) -> Result<Dealt, CustodyError> {
    custody.validate()?;
    let n_all = custody.keyholders.len();
    if let Some(bad) = without.iter().find(|i| usize::from(**i) >= n_all) {
        return Err(CustodyError::Policy(format!(
            "no keyholder at position {bad} (the policy names {n_all})"
        )));
    }
    let left_out = (0..n_all)
        .filter(|i| without.iter().any(|w| usize::from(*w) == *i))
        .count();
    if n_all - left_out < usize::from(custody.threshold) {
        return Err(CustodyError::Policy(format!(
            "leaving out {left_out} of {n_all} keyholders leaves fewer than the threshold {}",
            custody.threshold
        )));
    }
    let mut root = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(root.as_mut_slice());
    let id = root_id(&root);
    let n = u8::try_from(custody.keyholders.len())
        .map_err(|_| CustodyError::Policy("too many keyholders".into()))?;
    let values = split_bytes(&root, custody.threshold, n, rng);
    let mut sealed = Vec::with_capacity(values.len());
    for ((value, keyholder), index) in values.into_iter().zip(&custody.keyholders).zip(1u8..) {
        if without.contains(&(index - 1)) {
            // `value` is zeroised on drop.
            sealed.push(Vec::new());
            continue;
        }
        let share = Share {
            index,
            threshold: custody.threshold,
            generation,
            target: *target,
            root_id: id,
            value,
        };
        sealed.push(seal_share(
            KEYHOLDER_SHARE_CONTEXT,
            &share,
            &KemPublicKey(keyholder.hpke_pk),
            rng,
        )?);
    }
    Ok(Dealt {
        root: RootSecret::from_bytes(*root),
        root_id: id,
        generation,
        sealed,
    })
}

fn info(context: &[u8], target: &SettlementTarget) -> Vec<u8> {
    [context, deployment_bytes(target).as_slice()].concat()
}

/// Seal `share` to `pk` under the purpose label `context` ([`KEYHOLDER_SHARE_CONTEXT`] or
/// [`KEYHOLDER_RELEASE_CONTEXT`]) and the share's deployment: `enc ‖ ct`.
pub fn seal_share(
    context: &[u8],
    share: &Share,
    pk: &KemPublicKey,
    rng: &mut impl CryptoRngCore,
) -> Result<Vec<u8>, CustodyError> {
    let (enc, ct) = hpke::seal_base(
        AEAD,
        pk,
        &info(context, &share.target),
        &[],
        &share.to_bytes(),
        rng,
    )
    .map_err(|_| CustodyError::BadShare("the recipient key is not usable"))?;
    Ok([enc.as_slice(), &ct].concat())
}

/// Open a share sealed by [`seal_share`] under `context` for the deployment `target`: refused
/// unless it opens with `sk` under exactly that label and deployment, and parses.
pub fn open_share(
    context: &[u8],
    sealed: &[u8],
    sk: &KemSecretKey,
    target: &SettlementTarget,
) -> Result<Share, CustodyError> {
    let (enc, ct) = sealed
        .split_at_checked(N_ENC)
        .ok_or(CustodyError::BadShare("sealed share too short"))?;
    let plain = hpke::open_base(AEAD, enc, sk, &info(context, target), &[], ct).map_err(|_| {
        CustodyError::BadShare("does not open (another key, label or deployment, or altered)")
    })?;
    let share = Share::from_bytes(&plain)?;
    if share.target != *target {
        return Err(CustodyError::WrongDeployment);
    }
    Ok(share)
}

/// Release `share` to a recovery key, authenticated as the keyholder holding `keyholder_sk`
/// (HPKE Auth mode under [`KEYHOLDER_RELEASE_CONTEXT`] and the share's deployment): `enc ‖ ct`.
/// Only the recovery key opens it, and only as coming from that keyholder.
pub fn seal_released(
    share: &Share,
    recovery: &KemPublicKey,
    keyholder_sk: &KemSecretKey,
    rng: &mut impl CryptoRngCore,
) -> Result<Vec<u8>, CustodyError> {
    let (enc, ct) = hpke::seal_auth(
        AEAD,
        recovery,
        &info(KEYHOLDER_RELEASE_CONTEXT, &share.target),
        &[],
        &share.to_bytes(),
        keyholder_sk,
        rng,
    )
    .map_err(|_| CustodyError::BadShare("the recovery key is not usable"))?;
    Ok([enc.as_slice(), &ct].concat())
}

/// Open a share released to this recovery key by one of `custody`'s keyholders: it must open
/// as sent by the keyholder at some position `p` (HPKE Auth mode with that keyholder's static
/// key as sender) and carry index `p + 1` (so a host cannot seal shares of its own root to the
/// recovery key, and one lying keyholder cannot claim another's index). Returns `(p, share)`.
pub fn open_released(
    sealed: &[u8],
    recovery: &KemSecretKey,
    target: &SettlementTarget,
    custody: &Custody,
) -> Result<(usize, Share), CustodyError> {
    let (enc, ct) = sealed
        .split_at_checked(N_ENC)
        .ok_or(CustodyError::BadShare("sealed share too short"))?;
    let info = info(KEYHOLDER_RELEASE_CONTEXT, target);
    for (position, k) in custody.keyholders.iter().enumerate() {
        let Ok(plain) = hpke::open_auth(
            AEAD,
            enc,
            recovery,
            &info,
            &[],
            ct,
            &KemPublicKey(k.hpke_pk),
        ) else {
            continue;
        };
        let share = Share::from_bytes(&plain)?;
        if share.target != *target {
            return Err(CustodyError::WrongDeployment);
        }
        if usize::from(share.index) != position + 1 {
            return Err(CustodyError::BadShare(
                "a keyholder released a share whose index is not its position + 1",
            ));
        }
        return Ok((position, share));
    }
    Err(CustodyError::BadShare(
        "does not open as released by any keyholder of the policy to this recovery key \
         (another sender, key or deployment, or altered)",
    ))
}

/// A root recombined from shares.
pub struct Recovered {
    /// The root.
    pub root: RootSecret,
    /// Its id (checked).
    pub root_id: [u8; 32],
    /// Its generation.
    pub generation: u64,
    /// The share indices that made it.
    pub used: Vec<u8>,
}

impl std::fmt::Debug for Recovered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recovered")
            .field("root_id", &hex::encode(self.root_id))
            .field("generation", &self.generation)
            .field("used", &self.used)
            .finish_non_exhaustive()
    }
}

/// Every k-subset (as positions) of `0..n`, in lexicographic order.
fn subsets(n: usize, k: usize) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    if k == 0 || k > n {
        return out;
    }
    let mut idx: Vec<usize> = (0..k).collect();
    loop {
        out.push(idx.clone());
        // The rightmost position that can still move right.
        let Some((i, v)) = idx
            .iter()
            .copied()
            .enumerate()
            .rev()
            .find(|&(i, v)| v < n - k + i)
        else {
            return out;
        };
        for (j, w) in idx.iter_mut().enumerate().skip(i) {
            *w = v + 1 + (j - i);
        }
    }
}

/// Recombine every root the shares allow, newest generation first: per (generation, claimed
/// root id, k), k-subsets of shares with distinct indices are tried until one interpolates to
/// a root with that id. A share that lies (a wrong value, or another root id) is outvoted as
/// long as k honest shares of the generation are present. Empty: no generation had k
/// consistent shares; [`CustodyError::NotEnough`] says what there was.
pub fn recover(shares: &[Share]) -> Result<Vec<Recovered>, CustodyError> {
    let mut groups: Vec<(u64, [u8; 32], u8)> = shares
        .iter()
        .map(|s| (s.generation, s.root_id, s.threshold))
        .collect();
    groups.sort();
    groups.dedup();
    groups.reverse();
    let mut out: Vec<Recovered> = Vec::new();
    let mut seen = Vec::new();
    // Every group that recombines is kept, several per generation included (review): a root of
    // a discarded dealing (or k liars' consistent fake) must not hide the one the snapshot
    // needs; the caller tries each against what it opens.
    for (generation, id, k) in groups {
        // One share per index (the first seen).
        let mut members: Vec<&Share> = Vec::new();
        for s in shares {
            if (s.generation, s.root_id, s.threshold) == (generation, id, k)
                && !members.iter().any(|m| m.index == s.index)
            {
                members.push(s);
            }
        }
        seen.push(format!(
            "generation {generation}: {} of {k} shares for root id {}",
            members.len(),
            hex::encode(&id[..6])
        ));
        for subset in subsets(members.len(), usize::from(k)) {
            let pick: Vec<&Share> = subset
                .iter()
                .filter_map(|&i| members.get(i).copied())
                .collect();
            let Ok(root) = interpolate(&pick) else {
                continue;
            };
            if root_id(&root) == id {
                out.push(Recovered {
                    root: RootSecret::from_bytes(*root),
                    root_id: id,
                    generation,
                    used: pick.iter().map(|s| s.index).collect(),
                });
                break;
            }
        }
    }
    if out.is_empty() {
        return Err(CustodyError::NotEnough(if seen.is_empty() {
            "no shares".into()
        } else {
            seen.join("; ")
        }));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;
    use sealbridge_seal::at_rest::SealingKey;

    fn target() -> SettlementTarget {
        SettlementTarget {
            chain_id: 31337,
            settlement: Address::repeat_byte(0x5e),
        }
    }

    fn keyholders(n: u8) -> (Vec<KemSecretKey>, Custody) {
        let mut sks = Vec::new();
        let mut ids = Vec::new();
        for i in 0..n {
            let (sk, pk) = KemSecretKey::derive(&[b'k', i]);
            sks.push(sk);
            ids.push(KeyholderId {
                hpke_pk: pk.0,
                tee: 0,
            });
        }
        (
            sks,
            Custody {
                threshold: 2,
                keyholders: ids,
            },
        )
    }

    fn opens(a: &RootSecret, b: &RootSecret) -> bool {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let blob = SealingKey::derive(a, b"p").seal(b"", b"x", &mut rng);
        SealingKey::derive(b, b"p").open(b"", &blob).is_ok()
    }

    #[test]
    fn gf_arithmetic() {
        // FIPS-197 §4.2: {57} • {83} = {c1}.
        assert_eq!(gf_mul(0x57, 0x83), 0xc1);
        for a in 1..=255u8 {
            assert_eq!(gf_mul(a, gf_inv(a)), 1, "{a}");
        }
        assert_eq!(gf_inv(0), 0);
    }

    #[test]
    fn subsets_enumerate_all() {
        assert_eq!(subsets(3, 2), vec![vec![0, 1], vec![0, 2], vec![1, 2]]);
        assert_eq!(subsets(5, 3).len(), 10);
        assert_eq!(subsets(4, 4), vec![vec![0, 1, 2, 3]]);
        assert!(subsets(2, 3).is_empty());
    }

    #[test]
    fn any_k_of_n_recover_and_k_minus_1_do_not() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let (sks, mut custody) = keyholders(5);
        custody.threshold = 3;
        let dealt = deal(&custody, &target(), 4, &mut rng).unwrap();
        assert_eq!(dealt.sealed.len(), 5);
        let shares: Vec<Share> = dealt
            .sealed
            .iter()
            .zip(&sks)
            .map(|(s, sk)| open_share(KEYHOLDER_SHARE_CONTEXT, s, sk, &target()).unwrap())
            .collect();
        for s in &shares {
            assert_eq!(
                (s.threshold, s.generation, s.root_id),
                (3, 4, dealt.root_id)
            );
        }
        for subset in subsets(5, 3) {
            let pick: Vec<Share> = subset.iter().map(|&i| shares[i].clone()).collect();
            let r = recover(&pick).unwrap();
            assert_eq!(r.len(), 1);
            assert_eq!(r[0].root_id, dealt.root_id);
            assert!(opens(&dealt.root, &r[0].root));
        }
        for subset in subsets(5, 2) {
            let pick: Vec<Share> = subset.iter().map(|&i| shares[i].clone()).collect();
            assert!(matches!(recover(&pick), Err(CustodyError::NotEnough(_))));
            let refs: Vec<&Share> = pick.iter().collect();
            let guess = interpolate(&refs).unwrap();
            assert_ne!(root_id(&guess), dealt.root_id);
            assert!(!opens(&dealt.root, &RootSecret::from_bytes(*guess)));
        }
    }

    #[test]
    fn a_lying_share_is_outvoted_and_detected() {
        let mut rng = ChaCha20Rng::seed_from_u64(8);
        let (sks, custody) = keyholders(3);
        let dealt = deal(&custody, &target(), 0, &mut rng).unwrap();
        let mut shares: Vec<Share> = dealt
            .sealed
            .iter()
            .zip(&sks)
            .map(|(s, sk)| open_share(KEYHOLDER_SHARE_CONTEXT, s, sk, &target()).unwrap())
            .collect();
        // Keyholder 1 lies about its value.
        shares[0].value[0] ^= 1;
        let r = recover(&shares).unwrap();
        assert_eq!(r[0].used, vec![2, 3]);
        assert!(opens(&dealt.root, &r[0].root));
        // With only the liar and one honest share: nothing.
        assert!(recover(&shares[..2]).is_err());
        // A liar claiming another root id forms its own group, which never checks out.
        shares[0].root_id = [9; 32];
        let r = recover(&shares).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].root_id, dealt.root_id);
    }

    /// Two dealings of one generation that both recombine (a discarded rotation's and the
    /// committed one, or k liars' consistent fake): both are returned, so the caller can take
    /// the one that opens its snapshot (review: the first to recombine used to hide the other).
    #[test]
    fn two_roots_of_one_generation_are_both_recovered() {
        let mut rng = ChaCha20Rng::seed_from_u64(10);
        let (sks, custody) = keyholders(4);
        let a = deal(&custody, &target(), 1, &mut rng).unwrap();
        let b = deal(&custody, &target(), 1, &mut rng).unwrap();
        let open = |d: &Dealt, i: usize| {
            open_share(KEYHOLDER_SHARE_CONTEXT, &d.sealed[i], &sks[i], &target()).unwrap()
        };
        let shares = vec![open(&a, 0), open(&a, 1), open(&b, 2), open(&b, 3)];
        let r = recover(&shares).unwrap();
        let ids: Vec<[u8; 32]> = r.iter().map(|x| x.root_id).collect();
        assert_eq!(r.len(), 2, "{ids:?}");
        assert!(ids.contains(&a.root_id) && ids.contains(&b.root_id));
        assert!(r.iter().all(|x| x.generation == 1));
    }

    #[test]
    fn two_generations_recover_newest_first() {
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let (sks, custody) = keyholders(3);
        let old = deal(&custody, &target(), 0, &mut rng).unwrap();
        let new = deal(&custody, &target(), 1, &mut rng).unwrap();
        let open = |d: &Dealt, i: usize| {
            open_share(KEYHOLDER_SHARE_CONTEXT, &d.sealed[i], &sks[i], &target()).unwrap()
        };
        let shares = vec![open(&old, 0), open(&new, 0), open(&old, 2), open(&new, 1)];
        let r = recover(&shares).unwrap();
        assert_eq!(
            r.iter().map(|r| r.generation).collect::<Vec<_>>(),
            vec![1, 0]
        );
        assert!(opens(&new.root, &r[0].root));
        assert!(!opens(&old.root, &r[0].root));
    }

    #[test]
    fn sealed_shares_are_bound_to_key_label_and_deployment() {
        let mut rng = ChaCha20Rng::seed_from_u64(10);
        let (sks, custody) = keyholders(3);
        let dealt = deal(&custody, &target(), 0, &mut rng).unwrap();
        let s = &dealt.sealed[0];
        assert!(open_share(KEYHOLDER_SHARE_CONTEXT, s, &sks[0], &target()).is_ok());
        // Another keyholder's key.
        assert!(open_share(KEYHOLDER_SHARE_CONTEXT, s, &sks[1], &target()).is_err());
        // Another purpose label.
        assert!(open_share(KEYHOLDER_RELEASE_CONTEXT, s, &sks[0], &target()).is_err());
        // Another deployment.
        let other = SettlementTarget {
            chain_id: 1,
            ..target()
        };
        assert!(open_share(KEYHOLDER_SHARE_CONTEXT, s, &sks[0], &other).is_err());
        // Every flipped byte and every truncation.
        for i in 0..s.len() {
            let mut t = s.clone();
            t[i] ^= 1;
            assert!(open_share(KEYHOLDER_SHARE_CONTEXT, &t, &sks[0], &target()).is_err());
        }
        for n in 0..s.len() {
            assert!(open_share(KEYHOLDER_SHARE_CONTEXT, &s[..n], &sks[0], &target()).is_err());
        }
        // Released to a recovery key: opens there only.
        let share = open_share(KEYHOLDER_SHARE_CONTEXT, s, &sks[0], &target()).unwrap();
        let (rsk, rpk) = KemSecretKey::generate(&mut rng);
        let released = seal_released(&share, &rpk, &sks[0], &mut rng).unwrap();
        assert_eq!(
            open_released(&released, &rsk, &target(), &custody).unwrap(),
            (0, share.clone())
        );
        assert!(open_released(&released, &sks[0], &target(), &custody).is_err());
        // H2: the host, knowing only the recovery public key, seals a share (here of the real
        // root; of its own root alike) to it: not from a keyholder, refused.
        let (host_sk, _) = KemSecretKey::generate(&mut rng);
        let forged = seal_released(&share, &rpk, &host_sk, &mut rng).unwrap();
        assert!(open_released(&forged, &rsk, &target(), &custody).is_err());
        let base = seal_share(KEYHOLDER_RELEASE_CONTEXT, &share, &rpk, &mut rng).unwrap();
        assert!(open_released(&base, &rsk, &target(), &custody).is_err());
        // M1: keyholder 2 releasing a share claiming index 1 is refused.
        let claims_1 = seal_released(&share, &rpk, &sks[1], &mut rng).unwrap();
        let r = open_released(&claims_1, &rsk, &target(), &custody);
        assert!(
            matches!(r, Err(CustodyError::BadShare(w)) if w.contains("position + 1")),
            "{r:?}"
        );
    }

    #[test]
    fn share_bytes_are_strict() {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let (sks, custody) = keyholders(2);
        let dealt = deal(&custody, &target(), 0, &mut rng).unwrap();
        let share = open_share(
            KEYHOLDER_SHARE_CONTEXT,
            &dealt.sealed[1],
            &sks[1],
            &target(),
        )
        .unwrap();
        let bytes = share.to_bytes();
        assert_eq!(bytes.len(), SHARE_LEN);
        assert_eq!(Share::from_bytes(&bytes).unwrap(), share);
        assert!(Share::from_bytes(&bytes[..SHARE_LEN - 1]).is_err());
        let mut v = bytes.to_vec();
        v[0] = 2;
        assert!(Share::from_bytes(&v).is_err());
        let mut zero = bytes.to_vec();
        zero[1] = 0;
        assert!(Share::from_bytes(&zero).is_err());
        assert!(!format!("{share:?}").contains(&hex::encode(&bytes[SHARE_LEN - 32..])));
    }

    #[test]
    fn custody_rules_are_validated() {
        let (_, c) = keyholders(3);
        assert!(c.validate().is_ok());
        let mut one = c.clone();
        one.threshold = 1;
        assert!(one.validate().is_err());
        let mut over = c.clone();
        over.threshold = 4;
        assert!(over.validate().is_err());
        let mut dup = c.clone();
        dup.keyholders[2] = dup.keyholders[0];
        assert!(dup.validate().is_err());
        let mut zero = c.clone();
        zero.keyholders[1].hpke_pk = [0; 32];
        assert!(zero.validate().is_err());
        let mut rng = ChaCha20Rng::seed_from_u64(12);
        assert!(deal(&one, &target(), 0, &mut rng).is_err());
    }
}
