//! Commands on the store and the keys directly (the server need not run): keys,
//! licenses, API keys, and the CLI's one map from a service error to its message.

use license_server::app::AppState;
use license_server::domain::LicenseId;
use license_server::service::licenses::{self, LicenseView, NewLicense, Terms};
use license_server::service::{tokens, ServiceError};
use license_server::signing::SigningKey;
use license_server::store::License;
use license_server::{open, ServerConfig};

use super::args::*;

pub(crate) const CLI: &str = "cli";

/// What a failed operation prints: the one place where a [`ServiceError`] becomes the
/// CLI's message (every failure exits 2).
pub(crate) fn message_of(e: ServiceError) -> String {
    match e {
        ServiceError::NotFound {
            what: "license",
            id,
        } => format!("no license {id}"),
        ServiceError::LicenseExists(id) => format!(
            "license {id} exists: give --sub alone to use it, or change it with \
             `license update`"
        ),
        other => other.to_string(),
    }
}

/// Runs `f` over the opened state (store, key and clock, as the server has them).
pub(crate) fn with_state(
    config: ServerConfig,
    f: impl FnOnce(&AppState) -> Result<(), ServiceError>,
) -> Result<(), String> {
    let state = open(config)?;
    f(&state).map_err(message_of)
}

pub(crate) fn keygen(config: &ServerConfig) -> Result<(), String> {
    let path = config.signing_key_path();
    if path.exists() {
        // The key signs every token the fleet holds: never replaced by accident. What
        // the caller usually wanted is its public half.
        return Err(format!(
            "{} exists: this server already has its signing key; `license-server jwks` \
             prints its public keys (the engines' `public-keys`); removing the key \
             invalidates every token it signed",
            path.display()
        ));
    }
    let key = SigningKey::generate()?;
    key.save(&path)?;
    eprintln!("license-server: private key written to {}", path.display());
    println!("{}", key.public_jwks());
    Ok(())
}

/// The license a `mint` or `api-key create` is for: a new one (`--tier` given) or an
/// existing one.
pub(crate) enum LicenseArg {
    New(NewLicense),
    Existing(LicenseId),
}

pub(crate) fn license_arg(config: &ServerConfig, a: LicenseArgs) -> Result<LicenseArg, String> {
    let Some(tier) = a.tier else {
        let t = &a.terms;
        let given = [("--days", t.days.is_some()), ("--org", t.org.is_some())];
        let mut given = given.iter().filter(|(_, g)| *g).map(|(f, _)| f.to_string());
        // An override's flag is its name: `seats` is `--seats`.
        let overrides = t.overrides().set();
        let mut overrides = overrides
            .iter()
            .map(|(n, _)| format!("--{}", n.replace('_', "-")));
        if let Some(f) = given.next().or_else(|| overrides.next()) {
            return Err(format!(
                "{f} describes a new license and needs --tier; change an existing one with \
                 `license update`"
            ));
        }
        return Ok(LicenseArg::Existing(a.sub));
    };
    let t = a.terms;
    let days = t.days.ok_or("--days is required (see --help)")?;
    licenses::check_terms(config, Some(tier), Some(days), t.heartbeat_interval)
        .map_err(message_of)?;
    Ok(LicenseArg::New(NewLicense::with_terms(
        a.sub,
        tier,
        days,
        t.into_terms(None, None),
    )))
}

/// Creates the license, or finds the existing one.
pub(crate) fn obtain(state: &AppState, arg: LicenseArg) -> Result<License, ServiceError> {
    match arg {
        LicenseArg::New(spec) => licenses::create(state, spec, CLI),
        LicenseArg::Existing(sub) => licenses::get(state, &sub).map_err(|e| match e {
            ServiceError::NotFound { .. } => ServiceError::Invalid(format!(
                "no license {sub}; create it with --tier and --days"
            )),
            other => other,
        }),
    }
}

pub(crate) fn mint(
    config: ServerConfig,
    a: LicenseArgs,
    refresh_url: Option<String>,
) -> Result<(), String> {
    let arg = license_arg(&config, a)?;
    with_state(config, |state| {
        let lic = obtain(state, arg)?;
        let (jwt, _) = tokens::issue_static(state, &lic, refresh_url.as_deref())?;
        println!("{jwt}");
        Ok(())
    })
}

pub(crate) fn api_key_create(config: ServerConfig, a: LicenseArgs) -> Result<(), String> {
    let arg = license_arg(&config, a)?;
    with_state(config, |state| {
        let lic = obtain(state, arg)?;
        let id = LicenseId::parse(&lic.id)?;
        println!("{}", licenses::new_api_key(state, &id, CLI)?);
        Ok(())
    })
}

pub(crate) fn license_update(
    config: ServerConfig,
    sub: &LicenseId,
    terms: Terms,
) -> Result<(), String> {
    with_state(config, |state| {
        let lic = licenses::update(state, sub, terms, CLI)?;
        println!(
            "{sub}: {} until {}{}",
            lic.tier,
            lic4es::clock::rfc3339(lic.expires_at),
            if lic.revoked { " (revoked)" } else { "" }
        );
        Ok(())
    })
}

pub(crate) fn license_show(config: &ServerConfig, sub: &LicenseId) -> Result<(), String> {
    let store = license_server::open_store(config)?;
    let lic = store
        .license(sub)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no license {sub}"))?;
    let view = LicenseView::of(config, &lic);
    println!(
        "{}",
        serde_json::to_string_pretty(&view).map_err(|e| e.to_string())?
    );
    Ok(())
}
