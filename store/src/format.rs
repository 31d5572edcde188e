//! The on-disk format: a fixed header bound as AES-256-GCM associated data, then
//! the ciphertext of the encoded map (see [`crate::secrets`]).
//!
//! ```text
//! offset size field
//!      0    8 magic "CLOBBRST"
//!      8    2 format version (u16 LE) = 1
//!     10    1 KDF kind: 0 raw key, 1 Argon2id
//!     11    1 reserved, 0
//!     12    4 Argon2id memory KiB (u32 LE)
//!     16    4 Argon2id iterations (u32 LE)
//!     20    4 Argon2id lanes (u32 LE)
//!     24   16 salt
//!     40   12 nonce (fresh for every write)
//!     52   16 key check: SHA-256("clobber-store key check v1\0" || key)[..16]
//!     68    8 body length in bytes (u64 LE), ciphertext plus 16-byte tag
//!     76    8 header check: SHA-256(bytes 0..76)[..8]
//!     84    … body
//! ```
//!
//! Each failure is told apart, in this order: not a store (magic), unknown version,
//! truncated (shorter than header or body length), damaged header (header check),
//! wrong key (key check), tampered body (AEAD tag). The key check is what lets us say
//! "wrong key" rather than "tampered": without it, AES-GCM reports both the same way.

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, ErrorKind, Result};
use crate::key::{self, KdfKind, KdfParams, Key, KeySource};
use crate::secrets::{self, Secrets};

/// The magic bytes every store file starts with.
pub const MAGIC: [u8; 8] = *b"CLOBBRST";
/// The format version this build writes and reads.
pub const VERSION: u16 = 1;
/// Size of the header in bytes.
pub const HEADER_LEN: usize = 84;
/// Size of the salt in bytes.
pub const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const KEY_CHECK_DOMAIN: &[u8] = b"clobber-store key check v1\0";

/// The parsed header of a store file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// How the key is obtained.
    pub kdf: KdfKind,
    /// Argon2id parameters (ignored for raw keys, stored as zeros).
    pub params: KdfParams,
    /// Per-store salt.
    pub salt: [u8; SALT_LEN],
    /// Per-write nonce.
    pub nonce: [u8; NONCE_LEN],
    /// Identifies the key without revealing it.
    pub key_check: [u8; 16],
    /// Length of the ciphertext including its tag.
    pub body_len: u64,
}

impl Header {
    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..8].copy_from_slice(&MAGIC);
        h[8..10].copy_from_slice(&VERSION.to_le_bytes());
        h[10] = self.kdf.to_byte();
        h[12..16].copy_from_slice(&self.params.memory_kib.to_le_bytes());
        h[16..20].copy_from_slice(&self.params.iterations.to_le_bytes());
        h[20..24].copy_from_slice(&self.params.parallelism.to_le_bytes());
        h[24..40].copy_from_slice(&self.salt);
        h[40..52].copy_from_slice(&self.nonce);
        h[52..68].copy_from_slice(&self.key_check);
        h[68..76].copy_from_slice(&self.body_len.to_le_bytes());
        let check = Sha256::digest(&h[..76]);
        h[76..84].copy_from_slice(&check[..8]);
        h
    }

    /// Parse and validate the header at the start of `file`, checking the file's
    /// length against it.
    ///
    /// # Errors
    /// [`ErrorKind::Corrupt`], [`ErrorKind::UnknownVersion`] or
    /// [`ErrorKind::Truncated`], in the order the module docs give.
    pub fn parse(file: &[u8]) -> Result<Self> {
        let len = file.len() as u64;
        let magic_len = file.len().min(MAGIC.len());
        if file.is_empty() || file[..magic_len] != MAGIC[..magic_len] {
            return Err(corrupt(
                "missing magic bytes: this is not a clobber store file",
            ));
        }
        if file.len() < 10 {
            return Err(truncated(HEADER_LEN as u64, len));
        }
        let version = u16::from_le_bytes([file[8], file[9]]);
        if version != VERSION {
            return Err(Error::new(ErrorKind::UnknownVersion { version }));
        }
        if file.len() < HEADER_LEN {
            return Err(truncated(HEADER_LEN as u64, len));
        }
        let h = &file[..HEADER_LEN];
        let check = Sha256::digest(&h[..76]);
        if h[76..84] != check[..8] {
            return Err(corrupt("header checksum mismatch: the header is damaged"));
        }
        let kdf = KdfKind::from_byte(h[10])
            .ok_or_else(|| corrupt(&format!("unknown KDF kind {}", h[10])))?;
        let u32_at = |i: usize| u32::from_le_bytes(h[i..i + 4].try_into().expect("4 bytes"));
        let params = KdfParams {
            memory_kib: u32_at(12),
            iterations: u32_at(16),
            parallelism: u32_at(20),
        };
        if kdf == KdfKind::Argon2id {
            params
                .validate()
                .map_err(|e| corrupt(&format!("header has unusable KDF parameters: {e}")))?;
        }
        let body_len = u64::from_le_bytes(h[68..76].try_into().expect("8 bytes"));
        let expected = (HEADER_LEN as u64).saturating_add(body_len);
        if len < expected {
            return Err(truncated(expected, len));
        }
        if len > expected {
            return Err(corrupt(&format!(
                "{} unexpected bytes after the encrypted body",
                len - expected
            )));
        }
        if body_len < TAG_LEN as u64 {
            return Err(corrupt("encrypted body is shorter than its tag"));
        }
        Ok(Self {
            kdf,
            params,
            salt: h[24..40].try_into().expect("16 bytes"),
            nonce: h[40..52].try_into().expect("12 bytes"),
            key_check: h[52..68].try_into().expect("16 bytes"),
            body_len,
        })
    }
}

fn corrupt(detail: &str) -> Error {
    Error::new(ErrorKind::Corrupt {
        detail: detail.to_owned(),
    })
}

fn truncated(expected: u64, actual: u64) -> Error {
    Error::new(ErrorKind::Truncated { expected, actual })
}

fn key_check(key: &Key) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(KEY_CHECK_DOMAIN);
    h.update(key.as_bytes());
    h.finalize()[..16].try_into().expect("16 bytes")
}

fn random<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| {
        Error::io(
            "read OS randomness",
            std::path::Path::new("<getrandom>"),
            std::io::Error::other(e.to_string()),
        )
    })?;
    Ok(b)
}

/// Encrypts and decrypts whole store files, caching the derived key so that an
/// Argon2id derivation happens once per (salt, parameters), not once per write.
#[derive(Debug)]
pub struct Cipher {
    source: KeySource,
    new_params: KdfParams,
    cached: Option<(KdfKind, KdfParams, [u8; SALT_LEN], Key)>,
    /// The salt a store created by this cipher gets, chosen (and its key derived)
    /// by [`crate::protocol::Codec::prepare`] before the lock is taken.
    fresh_salt: Option<[u8; SALT_LEN]>,
}

impl Cipher {
    /// A cipher for `source`; `new_params` is the cost used when a new store is created.
    #[must_use]
    pub fn new(source: KeySource, new_params: KdfParams) -> Self {
        Self {
            source,
            new_params,
            cached: None,
            fresh_salt: None,
        }
    }

    fn is_cached(&self, kdf: KdfKind, params: KdfParams, salt: [u8; SALT_LEN]) -> bool {
        self.cached
            .as_ref()
            .is_some_and(|(k, p, s, _)| *k == kdf && *p == params && *s == salt)
    }

    /// The KDF, parameters and salt a store created now would get.
    fn new_store_params(&mut self) -> Result<(KdfKind, KdfParams, [u8; SALT_LEN])> {
        let kdf = self.source.kdf_kind();
        let params = match kdf {
            KdfKind::Argon2id => {
                self.new_params.validate()?;
                self.new_params
            }
            KdfKind::Raw => KdfParams {
                memory_kib: 0,
                iterations: 0,
                parallelism: 0,
            },
        };
        let salt = match self.fresh_salt {
            Some(salt) => salt,
            None => {
                let salt = random::<SALT_LEN>()?;
                self.fresh_salt = Some(salt);
                salt
            }
        };
        Ok((kdf, params, salt))
    }

    fn key_for(&mut self, kdf: KdfKind, params: KdfParams, salt: [u8; SALT_LEN]) -> Result<Key> {
        if let Some((k, p, s, key)) = &self.cached
            && *k == kdf
            && *p == params
            && *s == salt
        {
            return Ok(key.clone());
        }
        let key = key::derive(&self.source, kdf, &params, &salt)?;
        self.cached = Some((kdf, params, salt, key.clone()));
        Ok(key)
    }

    /// Decrypt a whole store file.
    ///
    /// # Errors
    /// Any of the header errors, then [`ErrorKind::WrongKey`] or
    /// [`ErrorKind::Tampered`].
    pub fn open(&mut self, file: &[u8]) -> Result<Secrets> {
        Ok(self.open_owned(file.to_vec())?.0)
    }

    /// Decrypt a whole store file in place (no second copy of the plaintext), and
    /// return the map with the file's header. The buffer is wiped before it is freed.
    ///
    /// # Errors
    /// As [`Cipher::open`].
    pub fn open_owned(&mut self, file: Vec<u8>) -> Result<(Secrets, Header)> {
        let mut file = Zeroizing::new(file);
        let header = Header::parse(&file)?;
        let key = self.key_for(header.kdf, header.params, header.salt)?;
        if key_check(&key) != header.key_check {
            return Err(Error::new(ErrorKind::WrongKey));
        }
        let cipher = Aes256Gcm::new_from_slice(key.as_bytes()).expect("32-byte key");
        let nonce = Nonce::try_from(&header.nonce[..]).expect("12-byte nonce");
        let tag_at = file.len() - TAG_LEN;
        let tag = Tag::try_from(&file[tag_at..]).expect("16-byte tag");
        let (head, rest) = file.split_at_mut(HEADER_LEN);
        let body = &mut rest[..tag_at - HEADER_LEN];
        cipher
            .decrypt_inout_detached(&nonce, head, body.into(), &tag)
            .map_err(|_| Error::new(ErrorKind::Tampered))?;
        let map = secrets::decode(&file[HEADER_LEN..tag_at])?;
        Ok((map, header))
    }

    /// Encrypt `secrets` into a whole store file. `previous` is the header of the file
    /// being replaced (its KDF, parameters and salt are kept); `None` starts a new
    /// store with a fresh salt.
    ///
    /// # Errors
    /// [`ErrorKind::Invalid`] for unusable KDF parameters; I/O if the OS has no
    /// randomness.
    pub fn seal(&mut self, secrets: &Secrets, previous: Option<&Header>) -> Result<Vec<u8>> {
        secrets::check_limits(secrets)?;
        let (kdf, params, salt) = match previous {
            Some(h) => (h.kdf, h.params, h.salt),
            None => self.new_store_params()?,
        };
        let key = self.key_for(kdf, params, salt)?;
        let plain_len = secrets::encoded_len(secrets);
        let header = Header {
            kdf,
            params,
            salt,
            nonce: random::<NONCE_LEN>()?,
            key_check: key_check(&key),
            body_len: (plain_len + TAG_LEN) as u64,
        };
        let header_bytes = header.encode();
        // Header, then the plaintext encrypted in place: the plaintext never exists
        // outside this buffer, so there is nothing else to wipe.
        let mut out = Vec::with_capacity(HEADER_LEN + plain_len + TAG_LEN);
        out.extend_from_slice(&header_bytes);
        secrets::encode_into(secrets, &mut out);
        debug_assert_eq!(out.len(), HEADER_LEN + plain_len);
        let cipher = Aes256Gcm::new_from_slice(key.as_bytes()).expect("32-byte key");
        let nonce = Nonce::try_from(&header.nonce[..]).expect("12-byte nonce");
        let tag = cipher
            .encrypt_inout_detached(&nonce, &header_bytes, (&mut out[HEADER_LEN..]).into())
            .map_err(|_| {
                out.zeroize();
                Error::invalid("AES-GCM refused to encrypt (message too long)")
            })?;
        out.extend_from_slice(&tag);
        Ok(out)
    }
}

impl crate::protocol::Codec for Cipher {
    type Meta = Header;

    fn decode(&mut self, bytes: &[u8]) -> Result<(Secrets, Header)> {
        self.open_owned(bytes.to_vec())
    }

    fn decode_owned(&mut self, bytes: Vec<u8>) -> Result<(Secrets, Header)> {
        self.open_owned(bytes)
    }

    /// Only a passphrase needs work: Argon2id. A raw key is used as given.
    fn needs_preparation(&self) -> bool {
        matches!(self.source, KeySource::Passphrase(_))
    }

    /// Parse the header (its bounds are checked before anything else: a forged
    /// count of passes is damage, exit 5, and costs nothing), derive the key, and
    /// check it against the header's key check (a wrong passphrase is told here,
    /// before any lock). With no store yet, derive the key a new store will use.
    fn prepare(&mut self, file: Option<&[u8]>) -> Result<()> {
        let key = match file {
            // An empty file is what `lock-data-file` locks before the first write.
            Some(bytes) if !bytes.is_empty() => {
                let header = Header::parse(bytes)?;
                let key = self.key_for(header.kdf, header.params, header.salt)?;
                if key_check(&key) != header.key_check {
                    return Err(Error::new(ErrorKind::WrongKey));
                }
                key
            }
            _ => {
                let (kdf, params, salt) = self.new_store_params()?;
                self.key_for(kdf, params, salt)?
            }
        };
        drop(key);
        Ok(())
    }

    /// Cheap: parses at most the 84-byte header. A file whose header does not
    /// parse needs no key (decoding it fails before any derivation).
    fn is_prepared(&self, file: Option<&[u8]>) -> bool {
        match file {
            Some(bytes) if !bytes.is_empty() => {
                Header::parse(bytes).map_or(true, |h| self.is_cached(h.kdf, h.params, h.salt))
            }
            _ => {
                let kdf = self.source.kdf_kind();
                kdf == KdfKind::Raw
                    || self
                        .fresh_salt
                        .is_some_and(|salt| self.is_cached(kdf, self.new_params, salt))
            }
        }
    }

    fn encode(&mut self, secrets: &Secrets, previous: Option<&Header>) -> Result<Vec<u8>> {
        self.seal(secrets, previous)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher(pw: &str) -> Cipher {
        Cipher::new(KeySource::passphrase(pw), KdfParams::CHEAP)
    }

    fn sample() -> Secrets {
        let mut m = Secrets::new();
        m.insert("github".into(), Zeroizing::new("ghp_secret".into()));
        m
    }

    #[test]
    fn seal_then_open_round_trips() {
        let file = cipher("pw").seal(&sample(), None).unwrap();
        assert_eq!(cipher("pw").open(&file).unwrap(), sample());
        assert_eq!(Header::parse(&file).unwrap().params, KdfParams::CHEAP);
    }

    #[test]
    fn each_damage_has_its_own_error() {
        let file = cipher("pw").seal(&sample(), None).unwrap();
        let kind = |bytes: &[u8], pw: &str| cipher(pw).open(bytes).unwrap_err().kind().clone();

        assert_eq!(kind(&file, "other"), ErrorKind::WrongKey);

        let mut body = file.clone();
        *body.last_mut().unwrap() ^= 1;
        assert_eq!(kind(&body, "pw"), ErrorKind::Tampered);

        assert!(matches!(
            kind(&file[..file.len() - 1], "pw"),
            ErrorKind::Truncated { .. }
        ));
        assert!(matches!(
            kind(&file[..40], "pw"),
            ErrorKind::Truncated { .. }
        ));

        let mut version = file.clone();
        version[8] = 9;
        assert_eq!(
            kind(&version, "pw"),
            ErrorKind::UnknownVersion { version: 9 }
        );

        let mut salt = file.clone();
        salt[30] ^= 1;
        assert!(matches!(kind(&salt, "pw"), ErrorKind::Corrupt { .. }));

        assert!(matches!(
            kind(b"{\"secrets\":{}}", "pw"),
            ErrorKind::Corrupt { .. }
        ));
    }

    #[test]
    fn every_write_uses_a_fresh_nonce_and_keeps_the_salt() {
        let mut c = cipher("pw");
        let a = c.seal(&sample(), None).unwrap();
        let ha = Header::parse(&a).unwrap();
        let b = c.seal(&sample(), Some(&ha)).unwrap();
        let hb = Header::parse(&b).unwrap();
        assert_eq!(ha.salt, hb.salt);
        assert_ne!(ha.nonce, hb.nonce);
    }

    #[test]
    fn raw_keys_work_without_kdf() {
        let mut c = Cipher::new(KeySource::Raw(Key::from_bytes([3; 32])), KdfParams::DEFAULT);
        let file = c.seal(&sample(), None).unwrap();
        assert_eq!(Header::parse(&file).unwrap().kdf, KdfKind::Raw);
        assert_eq!(c.open(&file).unwrap(), sample());
    }
}
