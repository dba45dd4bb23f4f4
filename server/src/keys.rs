//! The Ed25519 signing key: generated once, stored as a private JWK (0600), published
//! as a JWK Set.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::Signer as _;
use serde_json::{json, Value};

/// A signing key and its id.
pub struct SigningKey {
    /// Key id, put in every token header.
    pub kid: String,
    seed: [u8; 32],
    /// The expanded key, derived once: deriving it per token (as a JWT library given
    /// the seed does) doubled the cost of every signature.
    signing: ed25519_dalek::SigningKey,
    /// The JWS header (`{"typ":"JWT","alg":"EdDSA","kid":…}`), base64url, shared by
    /// every token.
    header_b64: String,
}

impl SigningKey {
    /// A fresh random key.
    pub fn generate() -> Result<SigningKey, String> {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).map_err(|e| format!("no randomness: {e}"))?;
        let kid = format!("lic-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        Ok(Self::from_seed(kid, seed))
    }

    fn from_seed(kid: String, seed: [u8; 32]) -> SigningKey {
        let header = json!({"typ": "JWT", "alg": "EdDSA", "kid": kid});
        SigningKey {
            header_b64: URL_SAFE_NO_PAD.encode(header.to_string()),
            kid,
            seed,
            signing: ed25519_dalek::SigningKey::from_bytes(&seed),
        }
    }

    fn public_x(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.signing.verifying_key().to_bytes())
    }

    /// The public JWK Set clients configure as `public-keys`.
    pub fn public_jwks(&self) -> Value {
        json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
                         "kid": self.kid, "x": self.public_x()}]})
    }

    /// Reads the private JWK at `path`.
    pub fn load(path: &Path) -> Result<SigningKey, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let v: Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let field = |n: &str| {
            v.get(n)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("{}: missing `{n}`", path.display()))
        };
        if field("kty")? != "OKP" || field("crv")? != "Ed25519" {
            return Err(format!("{}: not an Ed25519 key", path.display()));
        }
        let d = URL_SAFE_NO_PAD
            .decode(field("d")?)
            .map_err(|_| format!("{}: `d` is not base64url", path.display()))?;
        let seed: [u8; 32] = d
            .try_into()
            .map_err(|_| format!("{}: `d` is not 32 bytes", path.display()))?;
        Ok(Self::from_seed(field("kid")?.to_string(), seed))
    }

    /// Writes the private JWK to `path` (0600, directory 0700); refuses to overwrite.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        if let Some(dir) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": self.kid,
                         "x": self.public_x(), "d": URL_SAFE_NO_PAD.encode(self.seed)});
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        f.write_all(
            serde_json::to_string_pretty(&jwk)
                .unwrap_or_default()
                .as_bytes(),
        )
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    /// Loads the key at `path`, creating one first if there is none.
    pub fn load_or_create(path: &Path) -> Result<SigningKey, String> {
        if path.exists() {
            return Self::load(path);
        }
        let key = Self::generate()?;
        key.save(path)?;
        Ok(key)
    }

    /// Signs `claims` as an EdDSA JWT with this key's kid (JWS compact serialization,
    /// RFC 7515: header, payload and Ed25519 signature, each base64url without padding).
    pub fn sign<C: serde::Serialize + ?Sized>(&self, claims: &C) -> Result<String, String> {
        let payload = serde_json::to_vec(claims).map_err(|e| e.to_string())?;
        let mut jwt = String::with_capacity(self.header_b64.len() + payload.len() * 4 / 3 + 90);
        jwt.push_str(&self.header_b64);
        jwt.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut jwt);
        let signature = self.signing.sign(jwt.as_bytes());
        jwt.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.to_bytes(), &mut jwt);
        Ok(jwt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_token_is_a_jws_the_engine_verifies_and_a_changed_one_is_refused() {
        let key = SigningKey::generate().unwrap();
        let claims = json!({"iss": "https://license.example", "sub": "org-a", "exp": 2_000_000_000,
                            "iat": 1_900_000_000, "tier": "team", "org_name": "Ünïcode & <co>"});
        let jwt = key.sign(&claims).unwrap();
        let (header, payload) = lic4es::token::decode_unverified(&jwt).unwrap();
        assert_eq!(
            header,
            json!({"typ": "JWT", "alg": "EdDSA", "kid": key.kid.as_str()})
        );
        assert_eq!(payload, claims);
        let keys = lic4es::token::KeySet::from_json_value(&key.public_jwks()).unwrap();
        let verified = keys.verify(&jwt).unwrap();
        assert_eq!(
            (verified.sub.as_str(), verified.exp),
            ("org-a", 2_000_000_000)
        );
        // Another key, or a payload changed after signing: refused.
        let other = SigningKey::generate().unwrap();
        let other_keys = lic4es::token::KeySet::from_json_value(&other.public_jwks()).unwrap();
        assert!(other_keys.verify(&jwt).is_err());
        let parts: Vec<&str> = jwt.split('.').collect();
        let forged =
            URL_SAFE_NO_PAD.encode(json!({"sub": "org-a", "tier": "enterprise"}).to_string());
        assert!(keys
            .verify(&format!("{}.{forged}.{}", parts[0], parts[2]))
            .is_err());
        // The same key loaded again signs the same bytes (Ed25519 is deterministic).
        let dir = tempfile::tempdir().unwrap();
        key.save(&dir.path().join("k.jwk")).unwrap();
        let loaded = SigningKey::load(&dir.path().join("k.jwk")).unwrap();
        assert_eq!(loaded.sign(&claims).unwrap(), jwt);
    }
}
