//! The secret map and its plaintext encoding.
//!
//! The map is what `update` closures edit. Its byte encoding is explicit and
//! little-endian (never dependent on the platform's word size):
//!
//! ```text
//! count: u32 | count × ( name_len: u32 | name: UTF-8 | value_len: u32 | value: UTF-8 )
//! ```
//!
//! Names appear in strictly increasing byte order, so one map has exactly one
//! encoding. The encoding is what gets encrypted; the model file system of the loom
//! tests stores it as-is.

use std::collections::BTreeMap;

use zeroize::Zeroizing;

use crate::error::{Error, ErrorKind, Result};

/// A secret value. Its memory is wiped when it is dropped.
pub type Secret = Zeroizing<String>;

/// The whole store: secret name → value.
pub type Secrets = BTreeMap<String, Secret>;

/// Longest accepted name, in bytes.
pub const MAX_NAME_LEN: usize = 4096;

/// Check that `name` may be stored: non-empty, at most [`MAX_NAME_LEN`] bytes, no
/// control characters (they would break `list`'s one-name-per-line output).
///
/// # Errors
/// [`ErrorKind::Invalid`] naming the problem.
pub fn validate_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid("secret name must not be empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(Error::invalid(format!(
            "secret name is {} bytes long; the limit is {MAX_NAME_LEN}",
            name.len()
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "secret name {name:?} contains a control character"
        )));
    }
    Ok(())
}

/// Longest accepted value, in bytes (1 MiB). Every write re-encrypts and rewrites
/// the whole store, so one huge value makes every later write slow; secrets
/// (tokens, keys, passwords) are far smaller.
pub const MAX_VALUE_LEN: usize = 1024 * 1024;

/// Check that `value` may be stored: non-empty and at most [`MAX_VALUE_LEN`] bytes.
///
/// # Errors
/// [`ErrorKind::Invalid`] naming the problem.
pub fn validate_value(name: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid(format!(
            "value for secret {name:?} must not be empty"
        )));
    }
    if value.len() > MAX_VALUE_LEN {
        return Err(Error::invalid(format!(
            "value for secret {name:?} is {} bytes long; the limit is {MAX_VALUE_LEN} bytes",
            value.len()
        )));
    }
    Ok(())
}

/// Check that every name and value of `secrets` is within [`MAX_NAME_LEN`] and
/// [`MAX_VALUE_LEN`], so that [`encode`] cannot fail. The codecs call it before
/// encoding, which also covers maps edited through `update` directly.
///
/// # Errors
/// [`ErrorKind::Invalid`] naming the first secret out of bounds.
pub fn check_limits(secrets: &Secrets) -> Result<()> {
    if u32::try_from(secrets.len()).is_err() {
        return Err(Error::invalid(format!(
            "{} secrets do not fit in one store",
            secrets.len()
        )));
    }
    for (name, value) in secrets {
        if name.len() > MAX_NAME_LEN {
            return Err(Error::invalid(format!(
                "secret name is {} bytes long; the limit is {MAX_NAME_LEN}",
                name.len()
            )));
        }
        if value.len() > MAX_VALUE_LEN {
            return Err(Error::invalid(format!(
                "value for secret {name:?} is {} bytes long; the limit is {MAX_VALUE_LEN} bytes",
                value.len()
            )));
        }
    }
    Ok(())
}

/// Encode `secrets` into its plaintext bytes (wiped on drop).
///
/// # Panics
/// If a name, a value or the number of secrets exceeds `u32::MAX`, which
/// [`check_limits`] rules out long before (the codecs call it first).
#[must_use]
pub fn encode(secrets: &Secrets) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(encoded_len(secrets)));
    encode_into(secrets, &mut out);
    out
}

/// The length of [`encode`]'s output for `secrets`.
#[must_use]
pub fn encoded_len(secrets: &Secrets) -> usize {
    4 + secrets
        .iter()
        .map(|(k, v)| 8 + k.len() + v.len())
        .sum::<usize>()
}

/// Append the encoding of `secrets` to `out`; wiping `out` is the caller's job.
///
/// # Panics
/// As [`encode`].
pub fn encode_into(secrets: &Secrets, out: &mut Vec<u8>) {
    put_len(out, secrets.len());
    for (name, value) in secrets {
        put_len(out, name.len());
        out.extend_from_slice(name.as_bytes());
        put_len(out, value.len());
        out.extend_from_slice(value.as_bytes());
    }
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    let len = u32::try_from(len).expect("length fits in u32");
    out.extend_from_slice(&len.to_le_bytes());
}

/// Decode plaintext bytes produced by [`encode`].
///
/// # Errors
/// [`ErrorKind::Corrupt`] if the bytes are not exactly one valid encoding.
pub fn decode(bytes: &[u8]) -> Result<Secrets> {
    let mut reader = Reader { bytes, pos: 0 };
    let count = reader.len()?;
    // Names arrive sorted: collect them, check the order, and let the map build
    // itself in bulk (much cheaper than one insertion at a time).
    let mut entries: Vec<(String, Secret)> = Vec::with_capacity(count.min(bytes.len() / 8));
    for _ in 0..count {
        let name = reader.string("name")?;
        let value = Zeroizing::new(reader.string("value")?);
        if entries
            .last()
            .is_some_and(|(prev, _)| prev.as_str() >= name.as_str())
        {
            return Err(corrupt("secret names are not in strictly increasing order"));
        }
        entries.push((name, value));
    }
    if reader.pos != bytes.len() {
        return Err(corrupt("trailing bytes after the last secret"));
    }
    let secrets: Secrets = entries.into_iter().collect();
    Ok(secrets)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn len(&mut self) -> Result<usize> {
        let end = self.pos + 4;
        let raw = self
            .bytes
            .get(self.pos..end)
            .ok_or_else(|| corrupt("map ends inside a length field"))?;
        self.pos = end;
        let n = u32::from_le_bytes(raw.try_into().expect("four bytes"));
        usize::try_from(n).map_err(|_| corrupt("length does not fit this platform"))
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let len = self.len()?;
        let end = self
            .pos
            .checked_add(len)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| corrupt(&format!("map ends inside a {what}")))?;
        let raw = &self.bytes[self.pos..end];
        self.pos = end;
        std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| corrupt(&format!("a {what} is not UTF-8")))
    }
}

fn corrupt(detail: &str) -> Error {
    Error::new(ErrorKind::Corrupt {
        detail: detail.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> Secrets {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Zeroizing::new((*v).to_owned())))
            .collect()
    }

    #[test]
    fn encoding_round_trips() {
        let m = map(&[("a", "1"), ("b", "two"), ("ünï", "cödé")]);
        assert_eq!(decode(&encode(&m)).unwrap(), m);
        assert_eq!(decode(&encode(&Secrets::new())).unwrap(), Secrets::new());
    }

    #[test]
    fn encoding_is_little_endian_and_exact() {
        let bytes = encode(&map(&[("k", "v")]));
        assert_eq!(
            &bytes[..],
            &[1, 0, 0, 0, 1, 0, 0, 0, b'k', 1, 0, 0, 0, b'v']
        );
    }

    #[test]
    fn decode_rejects_trailing_and_short_input() {
        let mut bytes = encode(&map(&[("k", "v")])).to_vec();
        bytes.push(0);
        assert!(decode(&bytes).is_err());
        assert!(decode(&bytes[..bytes.len() - 3]).is_err());
    }

    #[test]
    fn names_and_values_are_validated() {
        assert!(validate_name("").is_err());
        assert!(validate_name("a\nb").is_err());
        assert!(validate_name("ok_name-1").is_ok());
        assert!(validate_value("k", "").is_err());
        assert!(validate_value("k", " ").is_ok());
        let max = "x".repeat(MAX_VALUE_LEN);
        assert!(validate_value("k", &max).is_ok());
        let over = "x".repeat(MAX_VALUE_LEN + 1);
        let err = validate_value("k", &over).unwrap_err().to_string();
        assert!(err.contains("the limit is 1048576 bytes"), "{err}");
        let mut big = map(&[("k", "v")]);
        big.insert("huge".into(), Zeroizing::new(over));
        assert!(check_limits(&big).is_err());
        assert!(check_limits(&map(&[("k", "v")])).is_ok());
    }
}
