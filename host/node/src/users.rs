//! Users of a node's admin API (guide §5.2.5): names with Argon2id password hashes in
//! node.toml (`[[user]]`, never the password), and the sessions a login opens.
//!
//! A user signs in with `POST /v1/login` (name and password) and sends the session token it
//! gets as `Authorization: Bearer …`, or sends `Authorization: Basic …` with each request.
//! Wrong passwords count against the address's failures with wrong tokens, so an address
//! that guesses is answered 429 until its minute is over, and each failure is logged.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The role that may use the admin API.
pub const ADMIN_ROLE: &str = "admin";
/// How long a session lasts.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(3600);
/// Sessions a node keeps at most (the oldest go first).
pub const MAX_SESSIONS: usize = 1024;

/// A user of the node (`[[user]]` in node.toml).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct UserConfig {
    /// 1-64 characters of [A-Za-z0-9._-].
    pub name: String,
    /// The password's Argon2id hash, as a PHC string (`$argon2id$v=19$m=…`): `joule user
    /// add` writes it.
    pub password_hash: String,
    /// What the user may do: `admin` uses the admin API.
    #[serde(default)]
    pub roles: Vec<String>,
}

impl UserConfig {
    pub fn check(&self) -> Result<(), String> {
        let n = &self.name;
        if n.is_empty() || n.len() > 64 || !n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.') {
            return Err(format!("user name {n:?}: 1-64 characters of [A-Za-z0-9._-]"));
        }
        let parsed = argon2::PasswordHash::new(&self.password_hash).map_err(|e| format!("user {n}: password-hash is not a PHC string: {e}"))?;
        if parsed.algorithm.as_str() != "argon2id" {
            return Err(format!("user {n}: password-hash uses {}, not argon2id (joule user add writes one)", parsed.algorithm));
        }
        for r in &self.roles {
            if r.is_empty() || r.len() > 32 || !r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                return Err(format!("user {n}: role {r:?}: 1-32 characters of [A-Za-z0-9_-]"));
            }
        }
        Ok(())
    }

    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|r| r == ADMIN_ROLE)
    }
}

/// The Argon2id hash (PHC string, random salt, the crate's recommended parameters) of
/// `password`.
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::PasswordHasher;
    if password.len() < 8 {
        return Err("a password has at least 8 characters".into());
    }
    argon2::Argon2::default().hash_password(password.as_bytes()).map(|h| h.to_string()).map_err(|e| format!("hash the password: {e}"))
}

/// Whether `password` is the one `hash` was made from.
pub fn verify_password(hash: &str, password: &str) -> bool {
    use argon2::PasswordVerifier;
    argon2::Argon2::default().verify_password(password.as_bytes(), hash).is_ok()
}

/// A signed-in user.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: String,
    pub roles: Vec<String>,
    pub expires: Instant,
}

/// Sessions by token, in memory (a restart signs everyone out).
#[derive(Default)]
pub struct Sessions(Mutex<HashMap<String, Session>>);

impl Sessions {
    /// Open a session for `user`: its token (64 hex digits).
    pub fn open(&self, user: &UserConfig) -> Result<String, String> {
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw).map_err(|e| format!("no OS randomness: {e}"))?;
        let token = hex::encode(raw);
        let now = Instant::now();
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, s| s.expires > now);
        while map.len() >= MAX_SESSIONS {
            let Some(oldest) = map.iter().min_by_key(|(_, s)| s.expires).map(|(t, _)| t.clone()) else { break };
            map.remove(&oldest);
        }
        map.insert(token.clone(), Session { user: user.name.clone(), roles: user.roles.clone(), expires: now + SESSION_LIFETIME });
        Ok(token)
    }

    /// The live session of `token`.
    pub fn get(&self, token: &str) -> Option<Session> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(token).filter(|s| s.expires > Instant::now()).cloned()
    }

    pub fn close(&self, token: &str) -> bool {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(token).is_some()
    }

    /// Close every session of `user` (removed, or its password changed).
    pub fn close_user(&self, user: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).retain(|_, s| s.user != user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_against_its_hash_only_and_the_hash_is_argon2id() {
        let hash = hash_password("correct horse").expect("hash");
        assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
        assert!(!hash.contains("correct horse"));
        assert!(verify_password(&hash, "correct horse"));
        assert!(!verify_password(&hash, "correct horsE"));
        assert!(!verify_password("not a hash", "correct horse"));
        assert_ne!(hash, hash_password("correct horse").expect("hash"), "a fresh salt each time");
        assert!(hash_password("short").is_err());
        let user = UserConfig { name: "alice".into(), password_hash: hash, roles: vec!["admin".into()] };
        assert!(user.check().is_ok() && user.is_admin());
        let bcrypt = UserConfig { password_hash: "$2b$12$abcdefghijklmnopqrstuv".into(), ..user.clone() };
        assert!(bcrypt.check().is_err());
    }

    #[test]
    fn sessions_expire_close_and_stay_bounded() {
        let s = Sessions::default();
        let user = UserConfig { name: "alice".into(), password_hash: String::new(), roles: vec![] };
        let t = s.open(&user).expect("token");
        assert_eq!(s.get(&t).map(|x| x.user), Some("alice".into()));
        assert!(s.close(&t) && s.get(&t).is_none());
        for _ in 0..MAX_SESSIONS + 10 {
            s.open(&user).expect("token");
        }
        assert!(s.0.lock().unwrap().len() <= MAX_SESSIONS);
        s.close_user("alice");
        assert!(s.0.lock().unwrap().is_empty());
    }
}
