//! The passphrase keyholder: Argon2id (RFC 9106) with an enforced floor, then HKDF.
//!
//! Specified in `docs/spec/stanza.md`.

use core::fmt;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use strongroom_crypto::aead::{WRAPPED_KEY_LEN, WrapKey, unwrap_key, wrap_key};
use strongroom_crypto::encoding::{Reader, Writer};
use strongroom_crypto::{
    Argon2idParams, CryptoError, DecodeError, Key256, SecretBytes, kdf, random,
};
use unicode_normalization::UnicodeNormalization;
use zeroize::Zeroizing;

use crate::exact;

use crate::keyholder::{Keyholder, KeyholderError, KeyholderKind, Stanza, WrapContext, stanza_aad};

/// HKDF label turning the Argon2id output into the wrapping key.
const WRAP_LABEL: &str = "strongroom/v1/passphrase-wrap";

/// Argon2id cost profiles for new passphrase wraps.
///
/// The profile only decides the parameters of *new* wraps; unwrapping uses the parameters
/// stored (and authenticated) in the stanza, after checking them against
/// [`Argon2idParams::FLOOR`] and [`Argon2idParams::CEILING`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Profile {
    /// RFC 9106 section 4, second recommended option: m = 64 MiB, t = 3, p = 4.
    #[default]
    Default,
    /// For small devices: m = 19 MiB, t = 2, p = 1 (the enforced floor).
    Constrained,
    /// Explicit parameters, checked against the floor and the ceiling when the keyholder is
    /// built (see [`calibrate`] to pick them for a target unlock time).
    Custom(Argon2idParams),
}

impl Profile {
    /// The Argon2id parameters of this profile (not yet checked for `Custom`).
    pub const fn params(self) -> Argon2idParams {
        match self {
            Profile::Default => Argon2idParams::DEFAULT,
            Profile::Constrained => Argon2idParams::CONSTRAINED,
            Profile::Custom(p) => p,
        }
    }
}

/// A passphrase that wraps keys: Argon2id stretches it, HKDF-SHA256 derives an
/// XChaCha20-Poly1305 wrapping key from the result.
///
/// The passphrase is normalised to Unicode NFC first, so the same words typed on systems
/// that compose accents differently open the same stanza. It is held in a zeroizing buffer
/// and never printed (`Debug` shows the profile only).
///
/// # Stanza body, version 1 (101 bytes)
///
/// ```text
/// offset  size  field
/// 0       1     body version = 1
/// 1       4     m: Argon2id memory in KiB (u32 big-endian)
/// 5       4     t: Argon2id passes (u32 big-endian)
/// 9       4     p: Argon2id lanes (u32 big-endian)
/// 13      16    salt (random per wrap)
/// 29      24    XChaCha20-Poly1305 nonce (random per wrap)
/// 53      32    wrapped key
/// 85      16    Poly1305 tag
/// ```
///
/// - `S = Argon2id(v=0x13, m, t, p, password = NFC(passphrase), salt, 32 bytes)`
/// - `W = HKDF-SHA256(ikm = S, salt = none, info = "strongroom/v1/passphrase-wrap" ‖ 0x00)`
/// - AEAD key `W`, associated data [`stanza_aad`]`(Passphrase, stanza id, body[0..29], ctx)`:
///   the cost parameters and salt are authenticated, so a storage that edits them is
///   detected; parameters below the floor are refused *before* Argon2id runs.
/// - The stanza id is 8 random bytes (a passphrase has no id that could be derived).
pub struct PassphraseKeyholder {
    passphrase: SecretBytes,
    params: Argon2idParams,
}

impl PassphraseKeyholder {
    /// A passphrase keyholder wrapping with `profile`'s parameters.
    ///
    /// Fails with [`KeyholderError::Crypto`] (`KdfBelowFloor` / `KdfAboveCeiling`) when a
    /// [`Profile::Custom`] is outside the accepted range. An empty passphrase is accepted here
    /// (it may be tried against existing stanzas) but [`Keyholder::wrap`] refuses it.
    pub fn new(passphrase: &SecretString, profile: Profile) -> Result<Self, KeyholderError> {
        let params = profile.params();
        params.check()?;
        Ok(Self {
            passphrase: normalize(passphrase.expose_secret()),
            params,
        })
    }

    /// The parameters new wraps use.
    pub fn params(&self) -> Argon2idParams {
        self.params
    }

    fn wrapping_key(
        &self,
        params: &Argon2idParams,
        salt: &[u8],
    ) -> Result<WrapKey, KeyholderError> {
        let stretched = params.derive(self.passphrase.expose_secret(), salt, &[], &[])?;
        Ok(WrapKey::new(&kdf::derive_key(&stretched, WRAP_LABEL, &[])))
    }
}

impl fmt::Debug for PassphraseKeyholder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PassphraseKeyholder({}, <redacted>)", self.params)
    }
}

/// NFC-normalises a passphrase into a zeroizing buffer.
fn normalize(passphrase: &str) -> SecretBytes {
    SecretBytes::from(nfc_exact(passphrase).into_bytes())
}

/// The NFC form of `passphrase` in an allocation of exactly its length.
///
/// It is built in a zeroizing buffer reserved for the worst case (NFC is at most three times
/// the input, UAX #15; [`exact::push`] grows it by hand past that), then copied out exactly
/// ([`exact::exact`]): `SecretBytes::from` would otherwise reallocate a buffer with spare
/// capacity and free the old one unzeroized.
fn nfc_exact(passphrase: &str) -> String {
    let mut out = Zeroizing::new(String::with_capacity(passphrase.len() * 3));
    for c in passphrase.nfc() {
        exact::push(&mut out, c);
    }
    exact::exact(core::mem::take(&mut *out))
}

/// A parsed passphrase stanza body (no secret inside).
pub(crate) struct PassphraseBody<'a> {
    pub(crate) params: Argon2idParams,
    pub(crate) header: &'a [u8],
    pub(crate) salt: &'a [u8],
    pub(crate) wrapped: &'a [u8],
}

pub(crate) const BODY_VERSION: u8 = 1;
const SALT_LEN: usize = 16;
const HEADER_LEN: usize = 1 + 12 + SALT_LEN;
const BODY_LEN: usize = HEADER_LEN + WRAPPED_KEY_LEN;

impl<'a> PassphraseBody<'a> {
    pub(crate) fn parse(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new("passphrase stanza body", body);
        r.version(&[BODY_VERSION])?;
        let params = Argon2idParams {
            memory_kib: r.u32("argon2id m")?,
            iterations: r.u32("argon2id t")?,
            parallelism: r.u32("argon2id p")?,
        };
        let salt = r.bytes(SALT_LEN, "salt")?;
        let wrapped = r.bytes(WRAPPED_KEY_LEN, "wrapped key")?;
        r.finish()?;
        Ok(Self {
            params,
            header: &body[..HEADER_LEN],
            salt,
            wrapped,
        })
    }
}

impl Keyholder for PassphraseKeyholder {
    fn kind(&self) -> KeyholderKind {
        KeyholderKind::Passphrase
    }

    fn describe(&self) -> String {
        format!("passphrase ({})", self.params)
    }

    fn wrap(&self, ctx: &WrapContext<'_>, key: &Key256) -> Result<Stanza, KeyholderError> {
        if self.passphrase.is_empty() {
            return Err(KeyholderError::EmptyPassphrase);
        }
        let id: [u8; 8] = random::array()?;
        let salt: [u8; SALT_LEN] = random::array()?;
        let mut w = Writer::with_capacity(BODY_LEN);
        w.u8(BODY_VERSION)
            .u32(self.params.memory_kib)
            .u32(self.params.iterations)
            .u32(self.params.parallelism)
            .bytes(&salt);
        let aad = stanza_aad(KeyholderKind::Passphrase, &id, w.as_slice(), ctx);
        let wrap = self.wrapping_key(&self.params, &salt)?;
        w.bytes(&wrap_key(&wrap, &aad, key)?);
        Ok(Stanza {
            kind: KeyholderKind::Passphrase,
            id,
            body: w.into_vec(),
        })
    }

    fn unwrap(
        &self,
        ctx: &WrapContext<'_>,
        stanza: &Stanza,
    ) -> Result<Option<Key256>, KeyholderError> {
        if stanza.kind != KeyholderKind::Passphrase {
            return Ok(None);
        }
        let body = PassphraseBody::parse(&stanza.body)?;
        // Untrusted parameters: refused below the floor (a downgrade) or above the ceiling
        // (memory exhaustion) before any work is done.
        body.params.check()?;
        let wrap = self.wrapping_key(&body.params, body.salt)?;
        let aad = stanza_aad(KeyholderKind::Passphrase, &stanza.id, body.header, ctx);
        match unwrap_key(&wrap, &aad, body.wrapped) {
            Ok(k) => Ok(Some(k)),
            Err(CryptoError::Decrypt) => Err(KeyholderError::WrongPassphrase),
            Err(e) => Err(e.into()),
        }
    }
}

/// The memory [`calibrate`] grows to before it adds passes: 256 MiB.
pub const CALIBRATE_MAX_MEMORY_KIB: u32 = 256 * 1024;

/// Measures this machine and returns Argon2id parameters, never below
/// [`Argon2idParams::FLOOR`], whose derivation takes about `target`.
///
/// Same as [`calibrate_with_limit`] with [`CALIBRATE_MAX_MEMORY_KIB`].
pub fn calibrate(target: Duration) -> Argon2idParams {
    calibrate_with_limit(target, CALIBRATE_MAX_MEMORY_KIB)
}

/// [`calibrate`] with an explicit memory limit in KiB (raised to the floor's memory if lower).
///
/// Algorithm (Argon2id's time is close to proportional to `m · t`):
/// 1. Measure one derivation at the probe `m = 64 MiB, t = 2, p = 4`, giving a scale
///    `s = target / measured`.
/// 2. If `s <= 1` the probe is already too slow: keep `t = 2, p = 4` and lower memory to
///    `64 MiB · s`, but never below the floor's 19 MiB.
/// 3. Otherwise spend the budget on memory first (memory hardness is what Argon2id buys):
///    `m = min(64 MiB · s, limit)`, then passes for the rest: `t = round(2 · s · 64 MiB / m)`,
///    at least 2.
/// 4. Measure once more at the chosen parameters and correct `t` in proportion
///    (`t · target / measured`, at least 2), since memory does not scale exactly linearly.
///
/// Memory is rounded down to whole MiB; `p` stays 4 (RFC 9106's recommendation, and what
/// lets a multi-core machine unlock faster than a single-core attacker guesses). Every value
/// is clamped between the floor and [`Argon2idParams::CEILING`], so the result always passes
/// [`Argon2idParams::check`]. Runs two or three derivations; with a zero target it returns
/// the floor memory with `t = 2, p = 4` after one.
pub fn calibrate_with_limit(target: Duration, max_memory_kib: u32) -> Argon2idParams {
    calibrate_by(target, max_memory_kib, |p| {
        let start = Instant::now();
        // Valid parameters cannot fail; a failure would only shorten the measurement.
        let _ = p.derive(b"strongroom calibration", &[0x5a; 16], &[], &[]);
        start.elapsed()
    })
}

const PROBE: Argon2idParams = Argon2idParams {
    memory_kib: 64 * 1024,
    iterations: 2,
    parallelism: 4,
};

/// The calibration algorithm with an injectable clock (for tests).
fn calibrate_by(
    target: Duration,
    max_memory_kib: u32,
    mut measure: impl FnMut(&Argon2idParams) -> Duration,
) -> Argon2idParams {
    let floor = Argon2idParams::FLOOR;
    let ceiling = Argon2idParams::CEILING;
    let limit = max_memory_kib.clamp(floor.memory_kib, ceiling.memory_kib);
    let probe_time = measure(&PROBE).as_secs_f64().max(1e-6);
    let scale = target.as_secs_f64() / probe_time;
    let probe_m = f64::from(PROBE.memory_kib);
    let to_mib = |kib: f64| -> u32 {
        let kib = kib.clamp(f64::from(floor.memory_kib), f64::from(limit));
        // In range by the clamp above.
        #[allow(clippy::cast_sign_loss)]
        let kib = kib as u32;
        (kib / 1024 * 1024).max(floor.memory_kib)
    };
    let clamp_t = |t: f64| -> u32 {
        #[allow(clippy::cast_sign_loss)]
        let t = t
            .round()
            .clamp(f64::from(floor.iterations), f64::from(ceiling.iterations))
            as u32;
        t
    };
    if scale <= 1.0 {
        return Argon2idParams {
            memory_kib: to_mib(probe_m * scale),
            iterations: floor.iterations,
            parallelism: PROBE.parallelism,
        };
    }
    let memory_kib = to_mib(probe_m * scale);
    let remaining = scale * probe_m / f64::from(memory_kib);
    let mut chosen = Argon2idParams {
        memory_kib,
        iterations: clamp_t(f64::from(PROBE.iterations) * remaining),
        parallelism: PROBE.parallelism,
    };
    let measured = measure(&chosen).as_secs_f64();
    if measured > 0.0 {
        chosen.iterations = clamp_t(f64::from(chosen.iterations) * target.as_secs_f64() / measured);
    }
    chosen
}

#[cfg(test)]
pub(crate) fn argon2id_for_test(
    params: &Argon2idParams,
    password: &[u8],
    salt: &[u8],
    secret: &[u8],
    ad: &[u8],
) -> Result<Key256, CryptoError> {
    params.derive_unchecked(password, salt, secret, ad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> WrapContext<'static> {
        WrapContext {
            purpose: "strongroom/v1/member-key",
            subject: b"vault-1/member-1",
        }
    }

    fn pass(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    /// RFC 9106 section 5.3 through this module's Argon2id stage, and the same parameters
    /// refused by the checked path the keyholder uses.
    #[test]
    fn rfc9106_vector_through_the_passphrase_stage() {
        let p = Argon2idParams {
            memory_kib: 32,
            iterations: 3,
            parallelism: 4,
        };
        let tag = argon2id_for_test(&p, &[0x01; 32], &[0x02; 16], &[0x03; 8], &[0x04; 12]).unwrap();
        assert_eq!(
            hex::encode(tag.expose_secret()),
            "0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659"
        );
        let err = PassphraseKeyholder::new(&pass("x"), Profile::Custom(p)).unwrap_err();
        assert!(
            matches!(
                err,
                KeyholderError::Crypto(CryptoError::KdfBelowFloor { .. })
            ),
            "{err}"
        );
    }

    #[test]
    fn body_layout_is_as_documented() {
        let kh = PassphraseKeyholder::new(&pass("pw"), Profile::Constrained).unwrap();
        let key = Key256::generate().unwrap();
        let s = kh.wrap(&ctx(), &key).unwrap();
        assert_eq!(s.body.len(), BODY_LEN);
        assert_eq!(BODY_LEN, 101);
        assert_eq!(s.body[0], 1);
        assert_eq!(&s.body[1..5], &(19u32 * 1024).to_be_bytes());
        assert_eq!(&s.body[5..9], &2u32.to_be_bytes());
        assert_eq!(&s.body[9..13], &1u32.to_be_bytes());
        let b = PassphraseBody::parse(&s.body).unwrap();
        assert_eq!(b.params, Argon2idParams::CONSTRAINED);
        assert_eq!(b.salt, &s.body[13..29]);
    }

    #[test]
    fn nfc_normalisation() {
        let composed = normalize("caf\u{e9}");
        let decomposed = normalize("cafe\u{301}");
        assert_eq!(composed.expose_secret(), decomposed.expose_secret());
        assert_eq!(composed.expose_secret(), "café".as_bytes());
    }

    #[test]
    fn normalised_passphrase_has_no_spare_capacity() {
        // Spare capacity would make `SecretBytes::from` reallocate and free an unzeroized copy.
        for p in [
            "",
            "hunter2",
            "caf\u{e9}",
            "cafe\u{301}",
            "\u{1100}\u{1161}\u{11a8}",
            "\u{fb2c}",
        ] {
            let n = nfc_exact(p);
            assert_eq!(n.capacity(), n.len(), "{p:?}");
        }
    }

    #[test]
    fn empty_passphrase_cannot_wrap() {
        let kh = PassphraseKeyholder::new(&pass(""), Profile::Constrained).unwrap();
        let err = kh.wrap(&ctx(), &Key256::generate().unwrap()).unwrap_err();
        assert!(matches!(err, KeyholderError::EmptyPassphrase), "{err}");
    }

    #[test]
    fn debug_is_redacted() {
        let kh = PassphraseKeyholder::new(&pass("hunter2"), Profile::Constrained).unwrap();
        let d = format!("{kh:?}");
        assert!(!d.contains("hunter2"), "{d}");
        assert!(d.contains("m=19456"), "{d}");
    }

    #[test]
    fn profiles() {
        assert_eq!(Profile::default().params(), Argon2idParams::DEFAULT);
        assert_eq!(
            Profile::Default.params(),
            Argon2idParams {
                memory_kib: 65536,
                iterations: 3,
                parallelism: 4
            }
        );
        assert_eq!(Profile::Constrained.params(), Argon2idParams::FLOOR);
        let too_big = Argon2idParams {
            memory_kib: u32::MAX,
            ..Argon2idParams::DEFAULT
        };
        assert!(matches!(
            PassphraseKeyholder::new(&pass("x"), Profile::Custom(too_big)),
            Err(KeyholderError::Crypto(CryptoError::KdfAboveCeiling { .. }))
        ));
    }

    /// A synthetic machine where a derivation costs `m · t · ns_per_kib_pass` nanoseconds.
    fn model(ns_per_kib_pass: f64) -> impl FnMut(&Argon2idParams) -> Duration {
        move |p| {
            Duration::from_secs_f64(
                f64::from(p.memory_kib) * f64::from(p.iterations) * ns_per_kib_pass * 1e-9,
            )
        }
    }

    #[test]
    fn calibration_on_a_fast_machine_grows_memory_then_passes() {
        // 64 MiB, t=2 takes 131 ms here: a 1 s target is ~7.6x.
        let p = calibrate_by(
            Duration::from_secs(1),
            CALIBRATE_MAX_MEMORY_KIB,
            model(1000.0),
        );
        p.check().unwrap();
        assert_eq!(p.memory_kib, 256 * 1024, "{p}");
        assert_eq!(p.parallelism, 4);
        // 256 MiB · t · 1 µs ≈ 1 s  =>  t ≈ 3.8 => 4
        assert_eq!(p.iterations, 4, "{p}");
    }

    #[test]
    fn calibration_within_the_memory_limit_keeps_two_passes() {
        // 64 MiB, t=2 takes 131 ms: a 0.3 s target is ~2.3x => ~146 MiB, t = 2.
        let p = calibrate_by(
            Duration::from_millis(300),
            CALIBRATE_MAX_MEMORY_KIB,
            model(1000.0),
        );
        assert_eq!(p.iterations, 2, "{p}");
        assert!((140 * 1024..=150 * 1024).contains(&p.memory_kib), "{p}");
        assert_eq!(p.memory_kib % 1024, 0);
    }

    #[test]
    fn calibration_on_a_slow_machine_never_goes_below_the_floor() {
        for target_ms in [0, 1, 10, 100] {
            let p = calibrate_by(
                Duration::from_millis(target_ms),
                CALIBRATE_MAX_MEMORY_KIB,
                model(100_000.0),
            );
            p.check().unwrap();
            assert!(p.memory_kib >= Argon2idParams::FLOOR.memory_kib, "{p}");
            assert!(p.iterations >= 2, "{p}");
        }
        let p = calibrate_by(Duration::ZERO, CALIBRATE_MAX_MEMORY_KIB, model(100_000.0));
        assert_eq!(p.memory_kib, Argon2idParams::FLOOR.memory_kib);
        // A slow machine with a moderate target lowers memory proportionally.
        // 64 MiB, t=2 takes 1.3 s; a 0.65 s target halves memory to 32 MiB.
        let p = calibrate_by(
            Duration::from_micros(655_360),
            CALIBRATE_MAX_MEMORY_KIB,
            model(10_000.0),
        );
        assert_eq!(p.memory_kib, 32 * 1024, "{p}");
        assert_eq!(p.iterations, 2);
    }

    #[test]
    fn calibration_honours_a_low_limit_and_caps_passes() {
        let p = calibrate_by(Duration::from_hours(1), 1, model(1.0));
        p.check().unwrap();
        assert_eq!(p.memory_kib, Argon2idParams::FLOOR.memory_kib);
        assert_eq!(p.iterations, Argon2idParams::CEILING.iterations);
    }

    #[test]
    fn real_calibration_returns_checked_parameters() {
        // A zero target needs a single probe derivation.
        let p = calibrate(Duration::ZERO);
        p.check().unwrap();
        assert_eq!(p.memory_kib, Argon2idParams::FLOOR.memory_kib);
    }

    #[test]
    fn calibration_measures_its_estimate_then_corrects_it() {
        // The probe (64 MiB, t = 2) takes 125 ms and the target is 1 s: 8x the work. The
        // memory limit (128 MiB) takes 2x of it, so the estimate is t = 2 · 4 = 8 passes; it
        // is measured (2 s, say: the machine is slower at that size) and corrected to
        // t = 8 · 1 / 2 = 4.
        for (second, want_t) in [(2.0, 4), (0.0, 8)] {
            let mut asked = Vec::new();
            let p = calibrate_by(Duration::from_secs(1), 128 * 1024, |p| {
                asked.push(*p);
                Duration::from_secs_f64(if asked.len() == 1 { 0.125 } else { second })
            });
            assert_eq!(asked.len(), 2);
            assert_eq!(asked[0], PROBE);
            assert_eq!(PROBE.memory_kib, 64 * 1024);
            assert_eq!(
                (
                    asked[1].memory_kib,
                    asked[1].iterations,
                    asked[1].parallelism
                ),
                (128 * 1024, 8, 4)
            );
            // A second measurement of zero (a clock too coarse) keeps the estimate.
            assert_eq!((p.memory_kib, p.iterations), (128 * 1024, want_t), "{p}");
        }
    }
}
