//! The API key itself, apart from storage: how one is made, read back and checked.
//!
//! A key is `wsk_{prefix}_{secret}`: the prefix (8 lowercase letters and digits) is not secret —
//! it is how a key is listed, named in a revocation and looked up — and the secret is 32 random
//! bytes, base64url without padding (43 characters). Only the SHA-256 of the whole key is
//! stored. A fast hash is the right one here: slow password hashes exist to make guessing
//! low-entropy passwords expensive, and guessing 256 random bits is out of reach already, while
//! every API request pays for the hash.

use rand::{Rng, RngCore};
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const SCHEME: &str = "wsk_";
pub const PREFIX_LEN: usize = 8;
const PREFIX_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const SECRET_BYTES: usize = 32;
/// 32 bytes in base64url without padding: ceil(32 * 4 / 3).
const SECRET_LEN: usize = 43;
const BASE64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// A freshly generated key: the plaintext (to show once) and what is stored about it.
pub(crate) struct NewKey {
    pub key: SecretString,
    pub prefix: String,
    pub hash: KeyHash,
}

/// SHA-256 of a whole key, as stored (hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyHash(pub String);

impl NewKey {
    pub fn generate() -> Self {
        // `rng()` is a CSPRNG seeded from the operating system, fit for secrets.
        let mut rng = rand::rng();
        let prefix: String =
            (0..PREFIX_LEN).map(|_| char::from(PREFIX_ALPHABET[rng.random_range(0..PREFIX_ALPHABET.len())])).collect();
        let mut secret = [0u8; SECRET_BYTES];
        rng.fill_bytes(&mut secret);
        let key = format!("{SCHEME}{prefix}_{}", base64url(&secret));
        zeroize::Zeroize::zeroize(&mut secret);
        let hash = hash(&key);
        Self { key: SecretString::from(key), prefix, hash }
    }
}

/// A presented key that has the right shape; it says nothing yet about whether it is valid.
#[derive(Clone, Copy)]
pub(crate) struct PresentedKey<'a> {
    pub prefix: &'a str,
    whole: &'a str,
}

impl std::fmt::Debug for PresentedKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PresentedKey({SCHEME}{}_…)", self.prefix)
    }
}

impl<'a> PresentedKey<'a> {
    /// `None` for anything that is not `wsk_{8 × [a-z0-9]}_{43 × base64url}`, checked by
    /// position (the secret may itself contain `_`).
    pub fn parse(presented: &'a str) -> Option<Self> {
        let rest = presented.strip_prefix(SCHEME)?;
        if rest.len() != PREFIX_LEN + 1 + SECRET_LEN {
            return None;
        }
        let (prefix, rest) = rest.split_at_checked(PREFIX_LEN)?;
        let secret = rest.strip_prefix('_')?;
        let prefix_ok = is_prefix(prefix);
        let secret_ok = secret.bytes().all(|b| BASE64URL.contains(&b));
        (prefix_ok && secret_ok).then_some(Self { prefix, whole: presented })
    }

    /// Whether this key hashes to `stored`, compared in constant time so that the time taken
    /// says nothing about how much of a guess was right.
    pub fn matches(&self, stored: &KeyHash) -> bool {
        hash(self.whole).0.as_bytes().ct_eq(stored.0.as_bytes()).into()
    }
}

/// Whether `prefix` could be a key's prefix (and so is safe inside a table key).
pub fn is_prefix(prefix: &str) -> bool {
    prefix.len() == PREFIX_LEN && prefix.bytes().all(|b| PREFIX_ALPHABET.contains(&b))
}

pub(crate) fn hash(key: &str) -> KeyHash {
    KeyHash(hex::encode(Sha256::digest(key.as_bytes())))
}

/// Base64url without padding (RFC 4648 §5); the only encoding this module needs, so no crate.
fn base64url(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let sextets = chunk.len() + 1;
        for i in 0..sextets {
            out.push(char::from(BASE64URL[((n >> (18 - 6 * i)) & 0x3f) as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    impl NewKey {
        fn reveal(&self) -> &str {
            self.key.expose_secret()
        }
    }

    #[test]
    fn a_new_key_has_the_documented_shape_and_parses_back() {
        let new = NewKey::generate();
        let key = new.reveal();
        assert_eq!(key.len(), 4 + PREFIX_LEN + 1 + SECRET_LEN);
        assert!(key.starts_with(&format!("wsk_{}_", new.prefix)), "{}", new.prefix);
        let parsed = PresentedKey::parse(key).expect("a generated key parses");
        assert_eq!(parsed.prefix, new.prefix);
        assert!(parsed.matches(&new.hash));
        assert_eq!(hash(key), new.hash);
    }

    #[test]
    fn keys_differ_every_time() {
        let (a, b) = (NewKey::generate(), NewKey::generate());
        assert_ne!(a.reveal(), b.reveal());
        assert_ne!(a.hash, b.hash);
    }

    #[test]
    fn the_stored_hash_is_sha256_of_the_whole_key_not_the_key() {
        let new = NewKey::generate();
        assert_eq!(new.hash.0.len(), 64);
        assert!(!new.hash.0.contains(new.reveal()));
        assert_eq!(hash("abc").0, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn anything_else_is_malformed() {
        let good = NewKey::generate();
        let key = good.reveal();
        let secret = &key[4 + PREFIX_LEN + 1..];
        for bad in [
            String::new(),
            "wsk_".into(),
            format!("Bearer {key}"),
            format!("{key}x"),
            key[..key.len() - 1].to_owned(),
            key.replacen("wsk_", "wsx_", 1),
            format!("wsk_ABCDEFGH_{secret}"),
            format!("wsk_abc#defg_{secret}"),
            format!("wsk_abcdefgh-{secret}"),
            format!("wsk_abcdefgh_{}", "=".repeat(SECRET_LEN)),
            format!("wsk_abcdéfg_{secret}"),
        ] {
            assert!(PresentedKey::parse(&bad).is_none(), "{bad:?} parsed");
        }
    }

    #[test]
    fn a_wrong_secret_with_a_real_prefix_does_not_match() {
        let real = NewKey::generate();
        let other = NewKey::generate();
        let forged = format!("wsk_{}_{}", real.prefix, &other.reveal()[4 + PREFIX_LEN + 1..]);
        let presented = PresentedKey::parse(&forged).expect("well formed");
        assert_eq!(presented.prefix, real.prefix);
        assert!(!presented.matches(&real.hash));
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let new = NewKey::generate();
        let presented = PresentedKey::parse(new.reveal()).unwrap();
        let shown = format!("{presented:?} {:?}", new.key);
        assert!(!shown.contains(&new.reveal()[4 + PREFIX_LEN + 1..]), "{shown}");
    }

    #[test]
    fn base64url_matches_the_rfc_vectors() {
        // RFC 4648 §10 test vectors, without padding.
        let vectors = [("", ""), ("f", "Zg"), ("fo", "Zm8"), ("foo", "Zm9v"), ("foob", "Zm9vYg"), ("fooba", "Zm9vYmE")];
        for (plain, encoded) in vectors {
            assert_eq!(base64url(plain.as_bytes()), encoded);
        }
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
        assert_eq!(base64url(&[0u8; SECRET_BYTES]).len(), SECRET_LEN);
    }
}
