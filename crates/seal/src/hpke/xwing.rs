//! X-Wing: the hybrid KEM ML-KEM-768 + X25519 of draft-connolly-cfrg-xwing-kem (the final
//! construction: a 32-byte seed is the decapsulation key, expanded with SHAKE-256; SHA3-256
//! combiner with the label `\.//^\`), used as an HPKE KEM (the draft's "Use in HPKE" section:
//! KEM id 0x647a, `Nsecret` 32, `Nenc` 1120, `Npk` 1216, `Nsk` 32).
//!
//! ```text
//! expandDecapsulationKey(sk):  e = SHAKE256(sk, 96)
//!     (pk_M, sk_M) = ML-KEM-768.KeyGen_internal(d = e[0:32], z = e[32:64])
//!     sk_X = e[64:96];  pk_X = X25519(sk_X, 9)
//! pk = pk_M (1184) ‖ pk_X (32)
//! Encapsulate(pk; eseed = m (32) ‖ ek_X (32)):
//!     (ss_M, ct_M) = ML-KEM-768.Encaps_internal(pk_M, m)
//!     ct_X = X25519(ek_X, 9);  ss_X = X25519(ek_X, pk_X)
//!     ss = SHA3-256(ss_M ‖ ss_X ‖ ct_X ‖ pk_X ‖ "\.//^\");  ct = ct_M (1088) ‖ ct_X (32)
//! Decapsulate(ct, sk):
//!     ss_M = ML-KEM-768.Decaps(sk_M, ct_M)  (implicit rejection);  ss_X = X25519(sk_X, ct_X)
//!     ss = SHA3-256(ss_M ‖ ss_X ‖ ct_X ‖ pk_X ‖ "\.//^\")
//! ```
//!
//! ML-KEM-768 is RustCrypto's `ml-kem` (FIPS 203; checked here against NIST's ACVP vectors);
//! X25519 is aws-lc-rs's, as for DHKEM. One deliberate difference from the draft's pseudocode:
//! an X25519 exchange whose output is all zero (a low-order `pk_X` or `ct_X`) is refused
//! ([`Error::InvalidKey`]) rather than hashed, as RFC 9180 §7.1.4 does for DHKEM; an honest
//! key or ciphertext never produces it, and HPKE open fails either way.

use core::fmt;

use ml_kem::{
    B32, Decapsulate, EncapsulationKey, KeyExport, MlKem768, Seed, ml_kem_768::DecapsulationKey,
};
use rand_core::CryptoRngCore;
use sha3::Digest;
use shake::{ExtendableOutput, Update, XofReader};
use zeroize::Zeroizing;

use crate::{
    Error,
    keys::{KemPublicKey, KemSecretKey},
};

/// HPKE KEM id of X-Wing (draft-connolly-cfrg-xwing-kem, "Use in HPKE").
pub const XWING_KEM_ID: u16 = 0x647a;
/// `Npk`: ML-KEM-768 encapsulation key (1184) ‖ X25519 public key (32).
pub const XWING_N_PK: usize = 1216;
/// `Nenc`: ML-KEM-768 ciphertext (1088) ‖ X25519 ephemeral public key (32).
pub const XWING_N_ENC: usize = 1120;
/// `Nsk`: the decapsulation key is a 32-byte seed.
pub const XWING_N_SK: usize = 32;
/// Length of the encapsulation randomness `eseed` (ML-KEM `m` ‖ X25519 ephemeral secret).
pub const XWING_N_ESEED: usize = 64;

const PK_M: usize = 1184;
const CT_M: usize = 1088;
/// The combiner's label, `\.//^\` (6 bytes).
const LABEL: &[u8; 6] = b"\\.//^\\";

/// An X-Wing shared secret and ciphertext (`enc`), as encapsulation returns them.
pub type XWingEncapsulation = (Zeroizing<[u8; 32]>, Box<[u8; XWING_N_ENC]>);

/// An X-Wing public (encapsulation) key: `pk_M ‖ pk_X`, 1216 bytes.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct XWingPublicKey(Box<[u8; XWING_N_PK]>);

impl XWingPublicKey {
    /// Parses a 1216-byte key. The ML-KEM half is checked when encapsulating (FIPS 203 §7.2
    /// modulus check).
    ///
    /// # Errors
    /// [`Error::InvalidKey`] on a wrong length.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        <[u8; XWING_N_PK]>::try_from(bytes)
            .map(|a| Self(Box::new(a)))
            .map_err(|_| Error::InvalidKey)
    }

    /// The raw bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; XWING_N_PK] {
        &self.0
    }

    /// The COSE `kid` of envelopes sealed to this key: first 16 bytes of its SHA-256.
    #[must_use]
    pub fn key_id(&self) -> sealbridge_proto::KemKeyId {
        sealbridge_proto::KemKeyId::of_public_key(self.0.as_slice())
    }

    fn halves(&self) -> (&[u8], [u8; 32]) {
        let (m, x) = self.0.split_at(PK_M);
        let mut px = [0u8; 32];
        for (o, b) in px.iter_mut().zip(x) {
            *o = *b;
        }
        (m, px)
    }
}

impl fmt::Debug for XWingPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "XWingPublicKey(0x{}…)",
            hex::encode(self.0.get(..4).unwrap_or(&[]))
        )
    }
}

/// An X-Wing decapsulation key: the 32-byte seed and its expansion. Zeroised on drop.
pub struct XWingSecretKey {
    seed: Zeroizing<[u8; XWING_N_SK]>,
    dk_m: DecapsulationKey,
    sk_x: KemSecretKey,
    public: XWingPublicKey,
}

impl XWingSecretKey {
    /// `expandDecapsulationKey(seed)` (see the module docs).
    #[must_use]
    pub fn from_seed(seed: [u8; XWING_N_SK]) -> Self {
        let seed = Zeroizing::new(seed);
        let mut expanded = Zeroizing::new([0u8; 96]);
        let mut xof = shake::Shake256::default();
        xof.update(seed.as_slice());
        xof.finalize_xof().read(expanded.as_mut_slice());
        let mut dz = Zeroizing::new([0u8; 64]);
        let mut x = Zeroizing::new([0u8; 32]);
        for (o, b) in dz.iter_mut().zip(expanded.iter()) {
            *o = *b;
        }
        for (o, b) in x.iter_mut().zip(expanded.iter().skip(64)) {
            *o = *b;
        }
        let dk_m = DecapsulationKey::from_seed(Seed::from(*dz));
        let sk_x = KemSecretKey::from_bytes(*x);
        let mut pk = [0u8; XWING_N_PK];
        for (o, b) in pk.iter_mut().zip(
            dk_m.encapsulation_key()
                .to_bytes()
                .iter()
                .chain(sk_x.public().as_bytes()),
        ) {
            *o = *b;
        }
        Self {
            seed,
            dk_m,
            sk_x,
            public: XWingPublicKey(Box::new(pk)),
        }
    }

    /// `GenerateKeyPair`: a fresh 32-byte seed from `rng`.
    #[must_use]
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        let mut seed = Zeroizing::new([0u8; XWING_N_SK]);
        rng.fill_bytes(seed.as_mut_slice());
        Self::from_seed(*seed)
    }

    /// The seed (the serialized decapsulation key), for sealing at rest. Handle with care.
    #[must_use]
    pub fn expose_seed(&self) -> Zeroizing<[u8; XWING_N_SK]> {
        Zeroizing::new(*self.seed)
    }

    /// The public key.
    #[must_use]
    pub fn public(&self) -> &XWingPublicKey {
        &self.public
    }
}

impl fmt::Debug for XWingSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XWingSecretKey")
            .field("public", &self.public)
            .field("secret", &"[REDACTED]")
            .finish()
    }
}

fn combiner(ss_m: &[u8], ss_x: &[u8], ct_x: &[u8], pk_x: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut h = sha3::Sha3_256::new();
    Digest::update(&mut h, ss_m);
    Digest::update(&mut h, ss_x);
    Digest::update(&mut h, ct_x);
    Digest::update(&mut h, pk_x);
    Digest::update(&mut h, LABEL);
    let mut out = Zeroizing::new([0u8; 32]);
    for (o, b) in out.iter_mut().zip(h.finalize().iter()) {
        *o = *b;
    }
    out
}

/// `EncapsulateDerand(pk, eseed)`: `(ss, ct)`.
///
/// # Errors
/// [`Error::InvalidKey`] if the ML-KEM half of `pk` fails the modulus check or `pk_X` is of
/// low order.
pub(crate) fn encap_derand(
    pk: &XWingPublicKey,
    eseed: &[u8; XWING_N_ESEED],
) -> Result<XWingEncapsulation, Error> {
    let (pk_m, pk_x) = pk.halves();
    let ek_m =
        ml_kem::Key::<EncapsulationKey<MlKem768>>::try_from(pk_m).map_err(|_| Error::InvalidKey)?;
    let ek_m = EncapsulationKey::<MlKem768>::new(&ek_m).map_err(|_| Error::InvalidKey)?;
    let (m, ek_x) = eseed.split_at(32);
    let m = B32::try_from(m).map_err(|_| Error::InvalidKey)?;
    let (ct_m, ss_m) = ek_m.encapsulate_deterministic(&m);
    let ss_m = Zeroizing::new(<[u8; 32]>::from(ss_m));
    let mut ek = Zeroizing::new([0u8; 32]);
    for (o, b) in ek.iter_mut().zip(ek_x) {
        *o = *b;
    }
    let eph = KemSecretKey::from_bytes(*ek);
    let ct_x = eph.public();
    let ss_x = eph.dh(&KemPublicKey::from_bytes(pk_x))?;
    let ss = combiner(ss_m.as_slice(), ss_x.as_slice(), ct_x.as_bytes(), &pk_x);
    let mut ct = Box::new([0u8; XWING_N_ENC]);
    for (o, b) in ct.iter_mut().zip(ct_m.iter().chain(ct_x.as_bytes())) {
        *o = *b;
    }
    Ok((ss, ct))
}

/// `Decapsulate(ct, sk)`. A modified ML-KEM ciphertext yields ML-KEM's implicit-rejection key,
/// so the combined secret is unrelated to the sender's and HPKE open fails.
///
/// # Errors
/// [`Error::InvalidKey`] for a `ct` that is not 1120 bytes or whose `ct_X` is of low order.
pub(crate) fn decap(ct: &[u8], sk: &XWingSecretKey) -> Result<Zeroizing<[u8; 32]>, Error> {
    if ct.len() != XWING_N_ENC {
        return Err(Error::InvalidKey);
    }
    let (ct_m, ct_x) = ct.split_at(CT_M);
    let ct_m = ml_kem::Ciphertext::<MlKem768>::try_from(ct_m).map_err(|_| Error::InvalidKey)?;
    let ss_m = Zeroizing::new(<[u8; 32]>::from(sk.dk_m.decapsulate(&ct_m)));
    let ct_x = KemPublicKey::from_slice(ct_x)?;
    let ss_x = sk.sk_x.dh(&ct_x)?;
    let (_, pk_x) = sk.public.halves();
    Ok(combiner(
        ss_m.as_slice(),
        ss_x.as_slice(),
        ct_x.as_bytes(),
        &pk_x,
    ))
}
