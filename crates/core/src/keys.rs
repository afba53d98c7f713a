//! The server key: 32 random bytes kept in `<data-dir>/secret.key` (outside the database), used
//! to MAC short secrets stored in the database (one-time codes) and to sign tokens handed to
//! browsers (sign-in flows). A stolen database alone does not reveal or forge them.

use std::path::Path;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The server key.
#[derive(Clone)]
pub struct Keys {
    key: Arc<[u8; 32]>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

impl Keys {
    /// A key from bytes (tests, or a key read elsewhere).
    pub fn from_bytes(key: [u8; 32]) -> Keys {
        Keys { key: Arc::new(key) }
    }

    /// Read the key file, creating it (mode 0600) with fresh random bytes when it does not exist.
    pub fn load_or_create(path: &Path, rng: &crate::Rng) -> std::io::Result<Keys> {
        match std::fs::read_to_string(path) {
            Ok(s) => {
                let bytes = hex::decode(s.trim()).map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{} is not a hex key", path.display()),
                    )
                })?;
                let key: [u8; 32] = bytes.try_into().map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{} must hold 32 bytes as hex", path.display()),
                    )
                })?;
                Ok(Keys::from_bytes(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rng.fill(&mut key);
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    opts.mode(0o600);
                }
                use std::io::Write;
                let mut f = opts.open(path)?;
                f.write_all(hex::encode(key).as_bytes())?;
                f.sync_all()?;
                Ok(Keys::from_bytes(key))
            }
            Err(e) => Err(e),
        }
    }

    /// HMAC-SHA256 of `parts` under a key derived for `purpose`, as hex.
    pub fn mac(&self, purpose: &str, parts: &[&str]) -> String {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.key[..]).expect("any key length");
        m.update(purpose.as_bytes());
        for p in parts {
            m.update(&[0]);
            m.update(p.as_bytes());
        }
        hex::encode(m.finalize().into_bytes())
    }

    fn cipher_key(&self, purpose: &str) -> [u8; 32] {
        let mut k = [0u8; 32];
        let h = hex::decode(self.mac("encryption", &[purpose])).unwrap_or_default();
        k.copy_from_slice(&h[..32]);
        k
    }

    /// Encrypt a secret for storage (AES-256-GCM under a key derived for `purpose`; `nonce` must be
    /// fresh random bytes). The result is text: `v1:` + base64(nonce, tag, ciphertext).
    pub fn seal(&self, purpose: &str, plain: &[u8], nonce: [u8; 12]) -> String {
        use base64::Engine as _;
        use openssl::symm::{encrypt_aead, Cipher};
        let mut tag = [0u8; 16];
        let ct = encrypt_aead(
            Cipher::aes_256_gcm(),
            &self.cipher_key(purpose),
            Some(&nonce),
            purpose.as_bytes(),
            plain,
            &mut tag,
        )
        .expect("AES-256-GCM with a 32-byte key and a 12-byte nonce");
        let mut out = Vec::with_capacity(28 + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&tag);
        out.extend_from_slice(&ct);
        format!(
            "v1:{}",
            base64::engine::general_purpose::STANDARD.encode(out)
        )
    }

    /// Decrypt what [`Keys::seal`] made for `purpose`; None when it was not (or was tampered with,
    /// or the key file changed).
    pub fn open(&self, purpose: &str, sealed: &str) -> Option<Vec<u8>> {
        use base64::Engine as _;
        use openssl::symm::{decrypt_aead, Cipher};
        let raw = base64::engine::general_purpose::STANDARD
            .decode(sealed.strip_prefix("v1:")?)
            .ok()?;
        if raw.len() < 28 {
            return None;
        }
        decrypt_aead(
            Cipher::aes_256_gcm(),
            &self.cipher_key(purpose),
            Some(&raw[..12]),
            purpose.as_bytes(),
            &raw[28..],
            &raw[12..28],
        )
        .ok()
    }

    /// Constant-time check of a MAC made by [`Keys::mac`].
    pub fn verify(&self, purpose: &str, parts: &[&str], mac_hex: &str) -> bool {
        use subtle::ConstantTimeEq;
        let expected = self.mac(purpose, parts);
        expected.len() == mac_hex.len() && bool::from(expected.as_bytes().ct_eq(mac_hex.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_depend_on_purpose_parts_and_boundaries() {
        let k = Keys::from_bytes([7; 32]);
        let a = k.mac("code", &["a@b.c", "123456"]);
        assert!(k.verify("code", &["a@b.c", "123456"], &a));
        assert!(!k.verify("flow", &["a@b.c", "123456"], &a));
        assert_ne!(a, k.mac("code", &["a@b.c1", "23456"]));
        assert!(!k.verify("code", &["a@b.c", "123456"], &a[..10]));
    }

    #[test]
    fn sealed_secrets_open_only_with_the_same_key_and_purpose() {
        let k = Keys::from_bytes([9; 32]);
        let sealed = k.seal("provider-secret", b"hunter2", [1; 12]);
        assert!(!sealed.contains("hunter2"));
        assert_eq!(k.open("provider-secret", &sealed).unwrap(), b"hunter2");
        assert!(k.open("other-purpose", &sealed).is_none());
        assert!(Keys::from_bytes([8; 32])
            .open("provider-secret", &sealed)
            .is_none());
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert!(k
            .open("provider-secret", std::str::from_utf8(&tampered).unwrap())
            .is_none());
        assert!(k.open("provider-secret", "plain text").is_none());
    }

    #[test]
    fn the_key_file_is_created_once_and_reread() {
        let dir = std::env::temp_dir().join(format!("yiren-keys-{}", crate::Rng::os().u64()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("secret.key");
        let a = Keys::load_or_create(&p, &crate::Rng::os()).unwrap();
        let b = Keys::load_or_create(&p, &crate::Rng::os()).unwrap();
        assert_eq!(a.mac("x", &["y"]), b.mac("x", &["y"]));
        std::fs::write(&p, "zz").unwrap();
        assert!(Keys::load_or_create(&p, &crate::Rng::os()).is_err());
        std::fs::remove_dir_all(dir).ok();
    }
}
