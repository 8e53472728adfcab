//! The operating system's CSPRNG.
//!
//! Every call asks the kernel (`getrandom(2)` through `ring::rand::SystemRandom`); nothing is
//! buffered in user space, so a forked child can never replay its parent's randomness.
//! Callers that need several random values at once (a DEK and a nonce) take them in one
//! call to save the system call.

use ring::rand::{SecureRandom, SystemRandom};

use crate::CryptoError;

/// Fills `buf` with random bytes from the operating system.
///
/// ```
/// let mut nonce = [0u8; 24];
/// strongroom_crypto::random::fill(&mut nonce)?;
/// # Ok::<(), strongroom_crypto::CryptoError>(())
/// ```
pub fn fill(buf: &mut [u8]) -> Result<(), CryptoError> {
    SystemRandom::new()
        .fill(buf)
        .map_err(|_| CryptoError::Random)
}

/// Returns an array of random bytes.
pub fn array<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut out = [0u8; N];
    fill(&mut out)?;
    Ok(out)
}
