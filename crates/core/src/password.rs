//! Passwords: the policy (length 8..=128 characters, no composition rules, common passwords
//! refused) and a bounded argon2id hasher (m = 19 MiB, t = 2, p = 1; hashing runs on the blocking
//! pool behind a semaphore so a login storm cannot exhaust memory).

use std::sync::{Arc, OnceLock};

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::error::{DomainError, DomainResult};

/// Minimum password length in characters.
pub const MIN_LEN: usize = 8;
/// Maximum password length in characters (longer input is refused, never truncated).
pub const MAX_LEN: usize = 128;

/// Memory cost in KiB.
pub const M_COST: u32 = 19_456;
/// Iterations.
pub const T_COST: u32 = 2;
/// Parallelism.
pub const P_COST: u32 = 1;

/// Frequently used passwords that are refused whatever their length.
static COMMON: &str = include_str!("common-passwords.txt");

fn is_common(pw: &str) -> bool {
    static SET: OnceLock<std::collections::HashSet<String>> = OnceLock::new();
    SET.get_or_init(|| {
        COMMON
            .lines()
            .map(|l| l.trim().to_lowercase())
            .filter(|l| !l.is_empty())
            .collect()
    })
    .contains(&pw.to_lowercase())
}

/// Check a new password against the policy.
pub fn check_policy(pw: &str) -> DomainResult<()> {
    let n = pw.chars().count();
    if n < MIN_LEN {
        return Err(DomainError::invalid("password", "password.too_short"));
    }
    if n > MAX_LEN {
        return Err(DomainError::invalid("password", "password.too_long"));
    }
    if is_common(pw) {
        return Err(DomainError::invalid("password", "password.too_common"));
    }
    Ok(())
}

fn argon() -> Argon2<'static> {
    let params = Params::new(M_COST, T_COST, P_COST, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// The argon2id hasher shared by every sign-in.
#[derive(Clone, Debug)]
pub struct Hasher {
    permits: Arc<Semaphore>,
}

impl Default for Hasher {
    fn default() -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Hasher::new(2 * cores)
    }
}

/// Outcome of verifying a password.
#[derive(Debug, PartialEq, Eq)]
pub enum Verified {
    /// Wrong password.
    No,
    /// Right password, stored hash current.
    Yes,
    /// Right password; the stored hash uses old parameters and should be replaced by this one.
    YesRehash(String),
}

/// Each hash allocates its 19 MiB memory block afresh. glibc would serve blocks that size from
/// per-thread arenas after the first free (its mmap threshold adapts upwards) and keep them, so
/// memory grew with every blocking thread that ever hashed (measured by bench/auth-timing: about
/// 600 MB extra for 100 concurrent sign-ins). A fixed threshold makes every such block an mmap that
/// is returned on free, so hashing memory stays at permits × 19 MiB (measured: 78 MB).
fn return_hash_memory_to_the_os() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: OnceLock<()> = OnceLock::new();
        ONCE.get_or_init(|| {
            // SAFETY: mallopt only changes allocator tuning; 1 MiB is within glibc's allowed range.
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
            }
        });
    }
}

impl Hasher {
    /// A hasher allowing `concurrency` hashes at once.
    pub fn new(concurrency: usize) -> Self {
        return_hash_memory_to_the_os();
        Hasher {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
        }
    }

    /// Hash a password into a PHC string.
    pub async fn hash(&self, pw: &str, salt: [u8; 16]) -> DomainResult<String> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| DomainError::Forbidden)?;
        let pw = pw.to_string();
        tokio::task::spawn_blocking(move || hash_now(&pw, &salt))
            .await
            .map_err(|_| DomainError::Forbidden)?
    }

    /// Verify a password against a PHC string; an unparsable hash never matches.
    pub async fn verify(&self, pw: &str, phc: &str, salt: [u8; 16]) -> Verified {
        let Ok(_permit) = self.permits.acquire().await else {
            return Verified::No;
        };
        let (pw, phc) = (pw.to_string(), phc.to_string());
        tokio::task::spawn_blocking(move || {
            let Ok(parsed) = PasswordHash::new(&phc) else {
                return Verified::No;
            };
            if argon().verify_password(pw.as_bytes(), &parsed).is_err() {
                return Verified::No;
            }
            let current = parsed.algorithm.as_str() == "argon2id"
                && Params::try_from(&parsed)
                    .map(|p| p.m_cost() == M_COST && p.t_cost() == T_COST && p.p_cost() == P_COST)
                    .unwrap_or(false);
            if current {
                Verified::Yes
            } else {
                match hash_now(&pw, &salt) {
                    Ok(h) => Verified::YesRehash(h),
                    Err(_) => Verified::Yes,
                }
            }
        })
        .await
        .unwrap_or(Verified::No)
    }

    /// A hash no password matches, verified against when the account does not exist so an unknown
    /// email costs the same time as a wrong password.
    pub fn dummy_hash() -> &'static str {
        static DUMMY: OnceLock<String> = OnceLock::new();
        DUMMY.get_or_init(|| {
            hash_now("yiren-dummy-password-never-matches", &[7u8; 16]).unwrap_or_default()
        })
    }
}

fn hash_now(pw: &str, salt: &[u8; 16]) -> DomainResult<String> {
    let salt = SaltString::encode_b64(salt).map_err(|_| DomainError::Forbidden)?;
    argon()
        .hash_password(pw.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| DomainError::invalid("password", "password.too_long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_accepts_8_to_128_characters_and_refuses_common_passwords() {
        assert!(check_policy("1234567").is_err());
        assert!(check_policy("correct horse").is_ok());
        assert!(check_policy(&"x".repeat(64)).is_ok());
        assert!(check_policy(&"é".repeat(128)).is_ok());
        assert!(check_policy(&"x".repeat(129)).is_err());
        assert!(check_policy("password123").is_err());
        assert!(check_policy("密码是八个汉字吗").is_ok());
        for common in [
            "iloveyou",
            "sunshine",
            "football",
            "baseball",
            "Password1",
            "trustno1",
            "whatever",
            "woaini1314",
        ] {
            assert!(
                check_policy(common).is_err(),
                "{common} is among the most common passwords"
            );
        }
        assert!(
            check_policy("correct horse battery").is_ok(),
            "a passphrase is fine"
        );
    }

    #[tokio::test]
    async fn hashes_are_argon2id_with_the_required_parameters_and_verify() {
        let h = Hasher::new(2);
        let phc = h.hash("long enough pass", [1; 16]).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert_eq!(
            h.verify("long enough pass", &phc, [2; 16]).await,
            Verified::Yes
        );
        assert_eq!(
            h.verify("long enough pasS", &phc, [2; 16]).await,
            Verified::No
        );
        // No truncation: a 128-char password differs from its 127-char prefix.
        let long = "a".repeat(128);
        let phc = h.hash(&long, [3; 16]).await.unwrap();
        assert_eq!(h.verify(&long[..127], &phc, [2; 16]).await, Verified::No);
    }

    #[tokio::test]
    async fn an_old_parameter_hash_is_upgraded_on_verify() {
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8192, 1, 1, None).unwrap(),
        )
        .hash_password(
            b"long enough pass",
            &SaltString::encode_b64(&[9; 16]).unwrap(),
        )
        .unwrap()
        .to_string();
        match Hasher::new(1)
            .verify("long enough pass", &weak, [4; 16])
            .await
        {
            Verified::YesRehash(h) => assert!(h.contains("m=19456,t=2,p=1")),
            other => panic!("expected a rehash, got {other:?}"),
        }
    }
}
