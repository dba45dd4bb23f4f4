//! The Ed25519 signing key: generated once, stored as a private JWK (0600), published
//! as a JWK Set.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// PKCS#8 v1 prefix of an Ed25519 private key; the 32-byte seed follows.
const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// A signing key and its id.
pub struct SigningKey {
    /// Key id, put in every token header.
    pub kid: String,
    seed: [u8; 32],
    encoding: EncodingKey,
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
        let mut der = PKCS8_ED25519_PREFIX.to_vec();
        der.extend_from_slice(&seed);
        SigningKey {
            kid,
            seed,
            encoding: EncodingKey::from_ed_der(&der),
        }
    }

    fn public_x(&self) -> String {
        let sk = ed25519_dalek::SigningKey::from_bytes(&self.seed);
        URL_SAFE_NO_PAD.encode(sk.verifying_key().to_bytes())
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

    /// Signs `claims` as an EdDSA JWT with this key's kid.
    pub fn sign(&self, claims: &Value) -> Result<String, String> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(|e| e.to_string())
    }
}
