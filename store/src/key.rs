//! Where the encryption key comes from: a passphrase stretched with Argon2id, or a
//! raw 32-byte key file. Keys and passphrases are wiped from memory when dropped.

use std::fmt;
use std::path::Path;

use argon2::{Algorithm, Argon2, Params, Version};
use zeroize::Zeroizing;

use crate::error::{Error, ErrorKind, Result};

/// Length of every AES-256 key, in bytes.
pub const KEY_LEN: usize = 32;

/// A 256-bit key, wiped on drop.
#[derive(Clone)]
pub struct Key(Zeroizing<[u8; KEY_LEN]>);

impl Key {
    /// Wrap raw key bytes.
    #[must_use]
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The raw bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Read a key file: exactly 32 raw bytes, or 64 hexadecimal digits (one trailing
    /// newline allowed).
    ///
    /// # Errors
    /// [`ErrorKind::Io`] if the file cannot be read, [`ErrorKind::BadKeyFile`] if its
    /// contents are neither form.
    pub fn from_file(path: &Path) -> Result<Self> {
        let raw =
            Zeroizing::new(std::fs::read(path).map_err(|e| Error::io("read key file", path, e))?);
        let mut key = [0u8; KEY_LEN];
        if raw.len() == KEY_LEN {
            key.copy_from_slice(&raw);
            return Ok(Self::from_bytes(key));
        }
        let text = raw.strip_suffix(b"\n").unwrap_or(&raw);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text.len() != 2 * KEY_LEN {
            return Err(Error::at(
                ErrorKind::BadKeyFile {
                    detail: format!(
                        "expected 32 raw bytes or 64 hex digits, found {} bytes",
                        raw.len()
                    ),
                },
                path,
            ));
        }
        for (i, pair) in text.chunks_exact(2).enumerate() {
            let hi = hex_digit(pair[0]);
            let lo = hex_digit(pair[1]);
            match (hi, lo) {
                (Some(hi), Some(lo)) => key[i] = (hi << 4) | lo,
                _ => {
                    return Err(Error::at(
                        ErrorKind::BadKeyFile {
                            detail: format!("non-hex character near offset {}", 2 * i),
                        },
                        path,
                    ));
                }
            }
        }
        Ok(Self::from_bytes(key))
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The secret a store is opened with.
#[derive(Clone)]
pub enum KeySource {
    /// A passphrase, stretched with Argon2id using the parameters in the file header.
    Passphrase(Zeroizing<String>),
    /// A raw key (from a key file); no stretching.
    Raw(Key),
}

impl KeySource {
    /// A passphrase key source.
    #[must_use]
    pub fn passphrase(p: impl Into<String>) -> Self {
        Self::Passphrase(Zeroizing::new(p.into()))
    }

    /// The KDF a new store opened with this source uses.
    #[must_use]
    pub fn kdf_kind(&self) -> KdfKind {
        match self {
            Self::Passphrase(_) => KdfKind::Argon2id,
            Self::Raw(_) => KdfKind::Raw,
        }
    }
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Passphrase(_) => f.write_str("Passphrase(<redacted>)"),
            Self::Raw(_) => f.write_str("Raw(<redacted>)"),
        }
    }
}

/// How the file key is obtained; stored in the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KdfKind {
    /// The key is used as given (key file).
    Raw,
    /// Argon2id (RFC 9106) over a passphrase.
    Argon2id,
}

impl KdfKind {
    pub(crate) fn to_byte(self) -> u8 {
        match self {
            Self::Raw => 0,
            Self::Argon2id => 1,
        }
    }

    pub(crate) fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(Self::Raw),
            1 => Some(Self::Argon2id),
            _ => None,
        }
    }
}

/// Argon2id cost parameters, stored in every file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KdfParams {
    /// Memory in KiB (m).
    pub memory_kib: u32,
    /// Passes over memory (t).
    pub iterations: u32,
    /// Lanes (p).
    pub parallelism: u32,
}

impl KdfParams {
    /// The default: 19 MiB, t = 2, p = 1 (OWASP's Argon2id baseline).
    pub const DEFAULT: Self = Self {
        memory_kib: 19 * 1024,
        iterations: 2,
        parallelism: 1,
    };

    /// The cheapest parameters Argon2 accepts: for tests and harness scratch stores,
    /// never for real secrets.
    pub const CHEAP: Self = Self {
        memory_kib: 8,
        iterations: 1,
        parallelism: 1,
    };

    /// Largest memory cost accepted, from the command line or a file header
    /// (1 GiB): a damaged or hostile header must not make us allocate without bound.
    pub const MAX_MEMORY_KIB: u32 = 1024 * 1024;

    /// Most passes accepted (16; the default is 2, and libsodium's "sensitive"
    /// level uses 4). The header's checksum is not keyed, so anyone who can write
    /// the file can forge it: without this bound a count of 2³²−1 makes every
    /// `get` and `set` run for days. At the maxima one derivation takes about half
    /// a minute, which is the worst a forged header can cost.
    pub const MAX_ITERATIONS: u32 = 16;

    /// Most lanes accepted (16).
    pub const MAX_PARALLELISM: u32 = 16;

    /// Check the parameters are acceptable to Argon2 and within our limits
    /// ([`KdfParams::MAX_MEMORY_KIB`], [`KdfParams::MAX_ITERATIONS`],
    /// [`KdfParams::MAX_PARALLELISM`]). Cheap: no key is derived.
    ///
    /// # Errors
    /// [`ErrorKind::Invalid`] naming the bad parameter.
    pub fn validate(&self) -> Result<()> {
        let limits = [
            ("memory", self.memory_kib, Self::MAX_MEMORY_KIB, " KiB"),
            ("iterations", self.iterations, Self::MAX_ITERATIONS, ""),
            ("parallelism", self.parallelism, Self::MAX_PARALLELISM, ""),
        ];
        for (what, value, max, unit) in limits {
            if value > max {
                return Err(Error::invalid(format!(
                    "KDF {what} {value}{unit} exceeds the limit of {max}{unit}"
                )));
            }
        }
        self.argon2_params().map(|_| ())
    }

    fn argon2_params(&self) -> Result<Params> {
        Params::new(
            self.memory_kib,
            self.iterations,
            self.parallelism,
            Some(KEY_LEN),
        )
        .map_err(|e| {
            Error::invalid(format!(
                "invalid Argon2id parameters (m={} KiB, t={}, p={}): {e}",
                self.memory_kib, self.iterations, self.parallelism
            ))
        })
    }
}

impl Default for KdfParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Derive the file key from `source` for a file whose header says `kind`, `params`
/// and `salt`.
///
/// # Errors
/// [`ErrorKind::WrongKey`] if the source does not match the file's KDF kind (a key
/// file for a passphrase store or the reverse); [`ErrorKind::Invalid`] for bad
/// parameters.
pub fn derive(source: &KeySource, kind: KdfKind, params: &KdfParams, salt: &[u8]) -> Result<Key> {
    match (source, kind) {
        (KeySource::Raw(key), KdfKind::Raw) => Ok(key.clone()),
        (KeySource::Passphrase(pass), KdfKind::Argon2id) => {
            let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.argon2_params()?);
            let mut out = Zeroizing::new([0u8; KEY_LEN]);
            argon
                .hash_password_into(pass.as_bytes(), salt, &mut *out)
                .map_err(|e| Error::invalid(format!("Argon2id failed: {e}")))?;
            Ok(Key(out))
        }
        (KeySource::Raw(_), KdfKind::Argon2id) | (KeySource::Passphrase(_), KdfKind::Raw) => {
            Err(Error::new(ErrorKind::WrongKey))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2id_is_deterministic_and_salted() {
        let src = KeySource::passphrase("pw");
        let a = derive(
            &src,
            KdfKind::Argon2id,
            &KdfParams::CHEAP,
            b"salt-salt-salt-1",
        )
        .unwrap();
        let b = derive(
            &src,
            KdfKind::Argon2id,
            &KdfParams::CHEAP,
            b"salt-salt-salt-1",
        )
        .unwrap();
        let c = derive(
            &src,
            KdfKind::Argon2id,
            &KdfParams::CHEAP,
            b"salt-salt-salt-2",
        )
        .unwrap();
        assert_eq!(a.as_bytes(), b.as_bytes());
        assert_ne!(a.as_bytes(), c.as_bytes());
    }

    #[test]
    fn key_kind_mismatch_is_wrong_key() {
        let raw = KeySource::Raw(Key::from_bytes([7; 32]));
        let err = derive(
            &raw,
            KdfKind::Argon2id,
            &KdfParams::CHEAP,
            b"saltsaltsaltsalt",
        )
        .unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::WrongKey);
    }

    #[test]
    fn oversized_memory_is_rejected() {
        let p = KdfParams {
            memory_kib: KdfParams::MAX_MEMORY_KIB + 1,
            ..KdfParams::CHEAP
        };
        assert!(p.validate().is_err());
        assert!(KdfParams::DEFAULT.validate().is_ok());
        for p in [
            KdfParams {
                iterations: u32::MAX,
                ..KdfParams::CHEAP
            },
            KdfParams {
                iterations: KdfParams::MAX_ITERATIONS + 1,
                ..KdfParams::CHEAP
            },
            KdfParams {
                parallelism: KdfParams::MAX_PARALLELISM + 1,
                ..KdfParams::CHEAP
            },
        ] {
            let err = p.validate().unwrap_err().to_string();
            assert!(err.contains("exceeds the limit"), "{err}");
        }
    }
}
