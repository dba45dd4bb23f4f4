//! `license-server`: serve the license API, or manage keys, licenses and API keys.

use std::path::PathBuf;
use std::process::ExitCode;

use license_server::app::{check_tier, now_secs};
use license_server::keys::SigningKey;
use license_server::store::Store;
use license_server::{open, ServerConfig};

const USAGE: &str = "usage: license-server [--config FILE] COMMAND
  serve                                   serve the API (the default)
  keygen                                  create the signing key, print the public JWK Set
  jwks                                    print the public JWK Set (for `public-keys`)
  mint --tier T --sub ID --days N [--org NAME] [--refresh-url URL]
                                          print a signed static token (creates the license)
  api-key create --tier T --sub ID --days N [--org NAME]
                                          create a license and print its API key
  api-key revoke KEY                      revoke an API key
  license set-tier --sub ID --tier T      change a license's tier
  license revoke --sub ID                 revoke a license
Every setting has a default; see README for the config file.";

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let config_path = match take_flag(&mut args, "--config") {
        Ok(p) => p.map(PathBuf::from),
        Err(e) => return fail(&e),
    };
    let config = match ServerConfig::load(config_path.as_deref()) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match words.as_slice() {
        [] | ["serve"] => serve(config),
        ["keygen"] => keygen(&config),
        ["jwks"] => SigningKey::load(&config.signing_key_path()).map(|k| {
            println!("{}", k.public_jwks());
        }),
        ["mint", ..] => mint(config, &args[1..]),
        ["api-key", "create", ..] => api_key_create(config, &args[2..]),
        ["api-key", "revoke", key] => with_store(&config, |s| {
            s.revoke_api_key(key)
                .map_err(|e| e.to_string())?
                .then(|| println!("revoked"))
                .ok_or_else(|| "no such API key".to_string())
        }),
        ["license", "set-tier", ..] => {
            let mut rest = args[2..].to_vec();
            let sub = required(&mut rest, "--sub");
            let tier = required(&mut rest, "--tier");
            match (sub, tier) {
                (Ok(sub), Ok(tier)) => check_tier(&config, &tier).and_then(|_| {
                    with_store(&config, |s| {
                        s.set_tier(&sub, &tier)
                            .map_err(|e| e.to_string())?
                            .then(|| println!("{sub}: {tier}"))
                            .ok_or_else(|| format!("no license {sub}"))
                    })
                }),
                (Err(e), _) | (_, Err(e)) => Err(e),
            }
        }
        ["license", "revoke", ..] => {
            let mut rest = args[2..].to_vec();
            required(&mut rest, "--sub").and_then(|sub| {
                with_store(&config, |s| {
                    s.revoke_license(&sub)
                        .map_err(|e| e.to_string())?
                        .then(|| println!("{sub}: revoked"))
                        .ok_or_else(|| format!("no license {sub}"))
                })
            })
        }
        ["help"] | ["--help"] | ["-h"] => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("license-server: {msg}");
    ExitCode::from(2)
}

fn take_flag(args: &mut Vec<String>, name: &str) -> Result<Option<String>, String> {
    match args.iter().position(|a| a == name) {
        None => Ok(None),
        Some(i) if i + 1 < args.len() => {
            let v = args.remove(i + 1);
            args.remove(i);
            Ok(Some(v))
        }
        Some(_) => Err(format!("{name} needs a value")),
    }
}

fn required(args: &mut Vec<String>, name: &str) -> Result<String, String> {
    take_flag(args, name)?.ok_or_else(|| format!("{name} is required\n{USAGE}"))
}

fn with_store(
    config: &ServerConfig,
    f: impl FnOnce(&Store) -> Result<(), String>,
) -> Result<(), String> {
    f(&Store::open(&config.database_path())?)
}

fn keygen(config: &ServerConfig) -> Result<(), String> {
    let path = config.signing_key_path();
    if path.exists() {
        return Err(format!(
            "{} exists; remove it to make a new key",
            path.display()
        ));
    }
    let key = SigningKey::generate()?;
    key.save(&path)?;
    eprintln!("license-server: private key written to {}", path.display());
    println!("{}", key.public_jwks());
    Ok(())
}

struct LicenseArgs {
    tier: String,
    sub: String,
    days: i64,
    org: Option<String>,
}

fn license_args(args: &[String]) -> Result<(LicenseArgs, Vec<String>), String> {
    let mut rest = args.to_vec();
    let tier = required(&mut rest, "--tier")?.to_ascii_lowercase();
    let sub = required(&mut rest, "--sub")?;
    let days: i64 = required(&mut rest, "--days")?
        .parse()
        .map_err(|_| "--days must be a whole number".to_string())?;
    if !(1..=36_500).contains(&days) {
        return Err("--days must be 1 to 36500".into());
    }
    let org = take_flag(&mut rest, "--org")?;
    Ok((
        LicenseArgs {
            tier,
            sub,
            days,
            org,
        },
        rest,
    ))
}

fn mint(config: ServerConfig, args: &[String]) -> Result<(), String> {
    let (l, mut rest) = license_args(args)?;
    let refresh_url = take_flag(&mut rest, "--refresh-url")?;
    if let Some(extra) = rest.first() {
        return Err(format!("unexpected argument `{extra}`\n{USAGE}"));
    }
    let state = open(config)?;
    let lic = state.create_license(&l.sub, &l.tier, l.org.as_deref(), l.days, false)?;
    let (jwt, _) = state
        .issue_static(&lic, refresh_url.as_deref())
        .map_err(|e| format!("{e:?}"))?;
    println!("{jwt}");
    Ok(())
}

fn api_key_create(config: ServerConfig, args: &[String]) -> Result<(), String> {
    let (l, rest) = license_args(args)?;
    if let Some(extra) = rest.first() {
        return Err(format!("unexpected argument `{extra}`\n{USAGE}"));
    }
    let state = open(config)?;
    let lic = state.create_license(&l.sub, &l.tier, l.org.as_deref(), l.days, false)?;
    let key = state.new_api_key(&lic.id)?;
    println!("{key}");
    Ok(())
}

fn serve(config: ServerConfig) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let listen = config.listen.clone();
        let mut state = open(config)?;
        if let Some(s) = std::sync::Arc::get_mut(&mut state) {
            s.access_log = true;
        }
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        eprintln!(
            "license-server: listening on http://{} (key {}, started {})",
            listener.local_addr().map_err(|e| e.to_string())?,
            state.key.kid,
            lic4es::clock::rfc3339(now_secs())
        );
        license_server::serve(listener, state, async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            eprintln!("license-server: shutting down");
        })
        .await
        .map_err(|e| e.to_string())
    })
}
