//! The Ed25519 signing key: generated once, stored as a private JWK (0600), published
//! as a JWK Set — with the key that will sign next and the keys that signed before, so a
//! key is rotated without a token in the field going bad.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

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
    /// every token. A relay's key adds its grant to it ([`SigningKey::set_grant`]), and
    /// replaces it when the grant is renewed while the relay serves.
    header_b64: std::sync::RwLock<std::sync::Arc<str>>,
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
        SigningKey {
            header_b64: std::sync::RwLock::new(Self::header(&kid, None).into()),
            kid,
            seed,
            signing: ed25519_dalek::SigningKey::from_bytes(&seed),
        }
    }

    fn header(kid: &str, grant: Option<&str>) -> String {
        let mut header = json!({"typ": "JWT", "alg": "EdDSA", "kid": kid});
        if let Some(g) = grant {
            header[lic4es::token::GRANT_HEADER] = json!(g);
        }
        URL_SAFE_NO_PAD.encode(header.to_string())
    }

    /// Puts `grant` (a relay's grant from the vendor) in the header of every token this
    /// key signs from now on: what lets an engine accept them (`lic4es_grant`).
    pub fn set_grant(&self, grant: &str) {
        let header: std::sync::Arc<str> = Self::header(&self.kid, Some(grant)).into();
        *self
            .header_b64
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = header;
    }

    /// The public key's `x` (base64url): what a relay's grant names in `cnf`.
    pub fn public_x(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.signing.verifying_key().to_bytes())
    }

    /// The public half as a JWK.
    pub fn public_jwk(&self) -> Value {
        json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
               "kid": self.kid, "x": self.public_x()})
    }

    /// The public JWK Set of this key alone.
    pub fn public_jwks(&self) -> Value {
        json!({"keys": [self.public_jwk()]})
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
        let header = self
            .header_b64
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let mut jwt = String::with_capacity(header.len() + payload.len() * 4 / 3 + 90);
        jwt.push_str(&header);
        jwt.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut jwt);
        let signature = self.signing.sign(jwt.as_bytes());
        jwt.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.to_bytes(), &mut jwt);
        Ok(jwt)
    }
}

/// Where a server's keys live (under `data-dir`).
pub struct KeyFiles {
    /// The private key that signs (`signing-key.jwk`).
    pub active: PathBuf,
    /// The private key that will sign after the next `key activate`, published already.
    pub next: PathBuf,
    /// Public keys that signed before and still verify what they signed (a JWK Set).
    pub retired: PathBuf,
}

impl KeyFiles {
    /// The files under `data_dir`.
    pub fn in_dir(data_dir: &Path) -> KeyFiles {
        KeyFiles {
            active: data_dir.join("signing-key.jwk"),
            next: data_dir.join("next-signing-key.jwk"),
            retired: data_dir.join("retired-keys.json"),
        }
    }
}

/// The key that signs, and every public key the server publishes: the one that signs,
/// the next one (so engines trust it before it signs) and the retired ones (tokens they
/// signed stay valid until they expire).
pub struct KeyRing {
    /// The key that signs.
    pub active: SigningKey,
    next: Option<SigningKey>,
    retired: Vec<Value>,
}

impl KeyRing {
    /// Reads the keys; the active key must exist.
    pub fn load(files: &KeyFiles) -> Result<KeyRing, String> {
        Self::with_active(files, SigningKey::load(&files.active)?)
    }

    /// Reads the keys, creating the active one first if there is none.
    pub fn load_or_create(files: &KeyFiles) -> Result<KeyRing, String> {
        Self::with_active(files, SigningKey::load_or_create(&files.active)?)
    }

    /// A ring of one key, published alone: a relay's, which engines never take from its
    /// JWK Set (they verify it through the vendor's grant).
    pub fn single(active: SigningKey) -> KeyRing {
        KeyRing {
            active,
            next: None,
            retired: Vec::new(),
        }
    }

    fn with_active(files: &KeyFiles, active: SigningKey) -> Result<KeyRing, String> {
        let next = if files.next.exists() {
            Some(SigningKey::load(&files.next)?)
        } else {
            None
        };
        let retired = read_retired(&files.retired)?;
        Ok(KeyRing {
            active,
            next,
            retired,
        })
    }

    /// Every public key, the signing one first: what engines configure as `public-keys`
    /// and `/.well-known/jwks.json` serves. A kid appears once.
    pub fn public_jwks(&self) -> Value {
        let mut keys = vec![self.active.public_jwk()];
        keys.extend(self.next.iter().map(SigningKey::public_jwk));
        keys.extend(self.retired.iter().cloned());
        let mut seen = std::collections::HashSet::new();
        keys.retain(|k| seen.insert(k["kid"].as_str().unwrap_or_default().to_string()));
        json!({ "keys": keys })
    }

    /// The kid of the key that signs next, if one was added.
    pub fn next_kid(&self) -> Option<&str> {
        self.next.as_ref().map(|k| k.kid.as_str())
    }
}

fn read_retired(path: &Path) -> Result<Vec<Value>, String> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let set: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    // Each must be a public Ed25519 key the engine would accept: checked as the engine does.
    lic4es::token::KeySet::from_json_value(&set).map_err(|e| format!("{}: {e}", path.display()))?;
    let keys = set["keys"].as_array().cloned().unwrap_or_default();
    if keys.iter().any(|k| k.get("d").is_some()) {
        return Err(format!("{}: holds a private key", path.display()));
    }
    Ok(keys)
}

/// Writes `keys` as the retired set, atomically (a temporary file renamed over it), 0600.
fn write_retired(path: &Path, keys: &[Value]) -> Result<(), String> {
    let tmp = path.with_extension("json.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
    let text = serde_json::to_string_pretty(&json!({ "keys": keys })).unwrap_or_default();
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// `key add`: creates the next signing key, published from now on and signing after
/// [`activate_next`]. One at a time.
pub fn add_next(files: &KeyFiles) -> Result<KeyRing, String> {
    if files.next.exists() {
        return Err(format!(
            "{} exists: a next key was added already; `license-server key activate` makes \
             it the signing key",
            files.next.display()
        ));
    }
    SigningKey::generate()?.save(&files.next)?;
    KeyRing::load(files)
}

/// `key activate`: the next key signs from now on; the key that signed until now is
/// retired (its public half stays published). A running server signs with the new key
/// once restarted.
pub fn activate_next(files: &KeyFiles) -> Result<KeyRing, String> {
    let ring = KeyRing::load(files)?;
    if ring.next.is_none() {
        return Err(format!(
            "no next key ({} is missing): `license-server key add` creates one, to be \
             published to the engines before it signs",
            files.next.display()
        ));
    }
    // The old key's public half is kept first: a crash between the two steps leaves it
    // both signing and retired (published once), never unpublished.
    let mut retired = ring.retired.clone();
    retired.insert(0, ring.active.public_jwk());
    write_retired(&files.retired, &retired)?;
    std::fs::rename(&files.next, &files.active)
        .map_err(|e| format!("cannot move {}: {e}", files.next.display()))?;
    KeyRing::load(files)
}

/// `key retire KID`: a retired key is no longer published; tokens it signed stop being
/// valid wherever engines take the new set.
pub fn retire(files: &KeyFiles, kid: &str) -> Result<KeyRing, String> {
    let ring = KeyRing::load(files)?;
    if ring.active.kid == kid || ring.next_kid() == Some(kid) {
        return Err(format!(
            "{kid} is the signing key or the next one: only a retired key can be retired"
        ));
    }
    let mut retired = ring.retired.clone();
    let before = retired.len();
    retired.retain(|k| k["kid"].as_str() != Some(kid));
    if retired.len() == before {
        return Err(format!("no retired key {kid}"));
    }
    write_retired(&files.retired, &retired)?;
    KeyRing::load(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

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

    /// A rotation from the key ring's side: the next key published before it signs, the
    /// old one published after, until retired; a token of each verifies with the set
    /// published at each step that an engine could hold.
    #[test]
    fn a_key_is_added_activated_and_retired_without_a_gap_in_the_published_set() {
        let dir = tempfile::tempdir().unwrap();
        let files = KeyFiles::in_dir(dir.path());
        let claims = json!({"iss": "i", "sub": "s", "exp": 2_000_000_000, "tier": "pro"});
        let verifies = |set: &Value, jwt: &str| {
            lic4es::token::KeySet::from_json_value(set)
                .unwrap()
                .verify(jwt)
                .is_ok()
        };
        let first = KeyRing::load_or_create(&files).unwrap();
        let old_token = first.active.sign(&claims).unwrap();
        assert_eq!(first.public_jwks()["keys"].as_array().unwrap().len(), 1);
        assert!(activate_next(&files).err().unwrap().contains("key add"));

        let added = add_next(&files).unwrap();
        let next_kid = added.next_kid().unwrap().to_string();
        assert!(add_next(&files).err().unwrap().contains("exists"));
        assert_eq!(
            added.active.kid, first.active.kid,
            "the old key still signs"
        );
        let published = added.public_jwks();
        assert_eq!(published["keys"].as_array().unwrap().len(), 2);
        assert!(verifies(&published, &old_token));

        let activated = activate_next(&files).unwrap();
        assert_eq!(activated.active.kid, next_kid);
        let new_token = activated.active.sign(&claims).unwrap();
        // The set published after `key add` already verifies the new key's tokens.
        assert!(verifies(&published, &new_token));
        let after = activated.public_jwks();
        assert_eq!(
            after["keys"][0]["kid"],
            next_kid.as_str(),
            "the signing key first"
        );
        assert!(verifies(&after, &old_token) && verifies(&after, &new_token));
        assert!(!std::fs::read_to_string(&files.retired)
            .unwrap()
            .contains("\"d\""));
        assert_eq!(
            std::fs::metadata(&files.retired)
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );

        assert!(retire(&files, &next_kid).is_err(), "the signing key stays");
        assert!(retire(&files, "lic-nosuchkey").is_err());
        let retired = retire(&files, &first.active.kid).unwrap();
        let last = retired.public_jwks();
        assert!(!verifies(&last, &old_token) && verifies(&last, &new_token));
        assert_eq!(KeyRing::load(&files).unwrap().public_jwks(), last);
    }

    /// A server started mid-rotation serves (`/.well-known/jwks.json`) and verifies refresh
    /// bearers with every published key, and signs with the active one.
    #[test]
    fn a_server_publishes_the_next_and_retired_keys_and_signs_with_the_active_one() {
        let dir = tempfile::tempdir().unwrap();
        let config: crate::config::ServerConfig =
            toml::from_str(&format!("data-dir = {:?}", dir.path().to_str().unwrap())).unwrap();
        let files = config.key_files();
        let first_key = KeyRing::load_or_create(&files).unwrap().active;
        let first = first_key.kid.clone();
        let claims = json!({"iss": "i", "sub": "s", "exp": 2_000_000_000, "tier": "pro"});
        let old_token = first_key.sign(&claims).unwrap();
        add_next(&files).unwrap();
        let active = activate_next(&files).unwrap().active.kid.clone();
        let next = add_next(&files).unwrap().next_kid().unwrap().to_string();
        let state = crate::open(config).unwrap();
        assert_eq!(state.key.kid, active);
        let kids: Vec<&str> = state.jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        assert_eq!(kids, [active.as_str(), next.as_str(), first.as_str()]);
        assert!(
            state.keyset.verify(&old_token).is_ok(),
            "a retired key still verifies"
        );
    }

    #[test]
    fn a_retired_set_with_a_private_key_or_a_bad_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let files = KeyFiles::in_dir(dir.path());
        KeyRing::load_or_create(&files).unwrap();
        let key = SigningKey::generate().unwrap();
        let mut private = key.public_jwk();
        private["d"] = json!(URL_SAFE_NO_PAD.encode([7u8; 32]));
        for bad in [
            json!({"keys": [private]}).to_string(),
            json!({"keys": [{"kty": "RSA", "kid": "r", "n": "AQAB", "e": "AQAB"}]}).to_string(),
            "not json".to_string(),
        ] {
            std::fs::write(&files.retired, bad).unwrap();
            assert!(KeyRing::load(&files).is_err());
        }
    }
}
