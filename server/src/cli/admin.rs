//! Commands through the running server's admin API (`admin-token`): sessions, and the
//! answers to sites without the internet.

use std::path::Path;
use std::time::Duration;

use license_server::admin_api as api;
use license_server::domain::LicenseId;
use license_server::ServerConfig;

use super::args::Carried;
use super::reports::duration;

/// The running server's admin API (`admin-token`; its URL `--url`, else `public-url`,
/// else http://LISTEN).
pub(crate) struct Admin {
    base: reqwest::Url,
    token: String,
    client: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

/// An answer: its status and body, and the path of the next page when a listing has more.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: String,
    next: Option<String>,
}

impl Admin {
    pub(crate) fn new(config: &ServerConfig, url: Option<String>) -> Result<Admin, String> {
        let token = config
            .admin_token
            .clone()
            .filter(|t| !t.is_empty())
            .ok_or("the admin API needs `admin-token` in the config")?;
        let given = url.unwrap_or_else(|| config.public_url());
        let base = reqwest::Url::parse(&given).map_err(|e| format!("{given}: {e}"))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let client = lic4es::backend::http_client(Duration::from_secs(5), Duration::from_secs(30))
            .map_err(|e| e.to_string())?;
        Ok(Admin {
            base,
            token,
            client,
            rt,
        })
    }

    /// The URL of the path `segments` (each escaped as one segment) with `query`.
    pub(crate) fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> reqwest::Url {
        let mut u = self.base.clone();
        if let Ok(mut path) = u.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            u.query_pairs_mut().extend_pairs(query);
        }
        u
    }

    /// One call, with a JSON body when given.
    pub(crate) fn send(
        &self,
        method: reqwest::Method,
        url: reqwest::Url,
        body: Option<&serde_json::Value>,
    ) -> Result<Answer, String> {
        self.rt.block_on(async {
            let shown = url.to_string();
            let mut req = self.client.request(method, url).bearer_auth(&self.token);
            if let Some(body) = body {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.to_string());
            }
            let resp = req.send().await.map_err(|e| format!("{shown}: {e}"))?;
            let status = resp.status().as_u16();
            let next = resp
                .headers()
                .get(reqwest::header::LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(next_link);
            let body = resp.text().await.map_err(|e| e.to_string())?;
            Ok(Answer { status, body, next })
        })
    }

    /// Every item of a paged listing from `first` on, following each page's next link.
    pub(crate) fn every_page<T: serde::de::DeserializeOwned>(
        &self,
        first: reqwest::Url,
    ) -> Result<Vec<T>, String> {
        let mut items = Vec::new();
        let mut url = Some(first);
        while let Some(u) = url.take() {
            let a = self.send(reqwest::Method::GET, u, None)?;
            if a.status != 200 {
                return Err(answer_error(a.status, &a.body));
            }
            let page: Vec<T> = serde_json::from_str(&a.body).map_err(|e| e.to_string())?;
            items.extend(page);
            url = match a.next {
                Some(path) => Some(self.base.join(&path).map_err(|e| e.to_string())?),
                None => None,
            };
        }
        Ok(items)
    }
}

/// The target of a `Link` header's `rel="next"` (`<…>; rel="next"`).
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.trim().split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim() == "rel=\"next\"")
            .then(|| {
                target
                    .trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string()
            })
    })
}

pub(crate) fn sessions_list(
    config: &ServerConfig,
    license: Option<LicenseId>,
    url: Option<String>,
) -> Result<(), String> {
    let admin = Admin::new(config, url)?;
    let query: Vec<(&str, &str)> = license
        .as_ref()
        .map(|l| vec![("license", l.as_str())])
        .unwrap_or_default();
    let list: Vec<api::SessionRow> = admin.every_page(admin.url(&["admin", "sessions"], &query))?;
    println!(
        "{:<40} {:<24} {:<8} {:<21} {:>12} {:>12}  HARDWARE",
        "SESSION", "LICENSE", "MODE", "LAST SEEN", "OFFLINE FOR", "GRACE LEFT"
    );
    let clean = lic4es::log::clean;
    let secs = |v: Option<i64>| v.map(duration).unwrap_or_else(|| "-".into());
    for s in &list {
        let hw: String = clean(&s.hardware_id).chars().take(16).collect();
        println!(
            "{:<40} {:<24} {:<8} {:<21} {:>12} {:>12}  {hw}",
            clean(&s.session_id),
            clean(&s.license),
            clean(&s.mode),
            clean(&s.last_seen),
            secs(s.offline_secs),
            secs(s.grace_left_secs)
        );
    }
    println!("{} sessions", list.len());
    Ok(())
}

pub(crate) fn sessions_kick(
    config: &ServerConfig,
    id: &str,
    url: Option<String>,
) -> Result<(), String> {
    let admin = Admin::new(config, url)?;
    let a = admin.send(
        reqwest::Method::DELETE,
        admin.url(&["admin", "sessions", id], &[]),
        None,
    )?;
    match a.status {
        204 => {
            println!("{id}: kicked");
            Ok(())
        }
        404 => Err(format!("no session {id}")),
        s => Err(answer_error(s, &a.body)),
    }
}

/// The error message of an admin API answer.
pub(crate) fn answer_error(status: u16, body: &str) -> String {
    let message = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| body.to_string());
    format!("HTTP {status}: {}", lic4es::log::clean(&message))
}

/// A request given on the command line: a file, or `-` for standard input (bounded).
pub(crate) fn read_request(request: &str) -> Result<String, String> {
    if request == "-" {
        let mut t = String::new();
        std::io::Read::read_to_string(&mut std::io::Read::take(std::io::stdin(), 1 << 16), &mut t)
            .map_err(|e| format!("standard input: {e}"))?;
        Ok(t)
    } else {
        lic4es::cache::read_bounded(Path::new(request), true)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{request}: no such file"))
    }
}

/// Writes what the vendor hands back to `out`, else to standard output.
pub(crate) fn hand_back(out: Option<&Path>, token: &str) -> Result<(), String> {
    match out {
        Some(path) => std::fs::write(path, format!("{token}\n"))
            .map_err(|e| format!("{}: {e}", path.display())),
        None => {
            println!("{token}");
            Ok(())
        }
    }
}

/// Reads the request a site carried (checked with `parse` before the server is asked),
/// sends it to the admin API at `path` and hands the token in the answer (`token`) back
/// (to `--out`, else standard output); the request and the answer, for the summary.
pub(crate) fn answer_carried<R, A, E>(
    config: &ServerConfig,
    c: Carried,
    parse: fn(&str) -> Result<R, E>,
    path: &[&str],
    token: fn(&A) -> &str,
) -> Result<(R, A), String>
where
    R: serde::Serialize,
    A: serde::de::DeserializeOwned,
    E: std::fmt::Display,
{
    let text = read_request(&c.request)?;
    let request = parse(&text).map_err(|e| format!("{}: {e}", c.request))?;
    let body = serde_json::to_value(&request).map_err(|e| e.to_string())?;
    let admin = Admin::new(config, c.url)?;
    let a = admin.send(reqwest::Method::POST, admin.url(path, &[]), Some(&body))?;
    if a.status != 201 {
        return Err(answer_error(a.status, &a.body));
    }
    let answer: A = serde_json::from_str(&a.body).map_err(|e| e.to_string())?;
    hand_back(c.out.as_deref(), token(&answer))?;
    Ok((request, answer))
}

/// How an answer's seat stands, for its summary line.
fn held(counted: bool, held: &'static str) -> &'static str {
    if counted {
        held
    } else {
        " (not counted in seats)"
    }
}

pub(crate) fn relay_grant(config: &ServerConfig, c: Carried) -> Result<(), String> {
    let (req, g) = answer_carried(
        config,
        c,
        lic4es::offline::GrantRequest::parse,
        &["admin", "relay-grants"],
        |g: &api::RelayGrantAnswer| &g.grant,
    )?;
    eprintln!(
        "{}: grant {} of {} seats to relay key {} until {}{}",
        req.license_id,
        g.grant_id,
        req.seats,
        lic4es::log::clean(req.kid()),
        g.expires_at,
        held(g.counted, ", its seats held")
    );
    Ok(())
}

pub(crate) fn offline_activate(config: &ServerConfig, c: Carried) -> Result<(), String> {
    let (req, a) = answer_carried(
        config,
        c,
        lic4es::offline::ActivationRequest::parse,
        &["admin", "offline-activations"],
        |a: &api::Activated| &a.license,
    )?;
    eprintln!(
        "{}: activation {} on hardware {} until {}{}",
        req.license_id,
        a.activation_id,
        lic4es::log::clean(&req.hardware_id),
        a.expires_at,
        held(a.counted, ", holding a seat")
    );
    Ok(())
}

pub(crate) fn offline_deactivate(
    config: &ServerConfig,
    code: &str,
    url: Option<String>,
) -> Result<(), String> {
    lic4es::offline::DeactivationCode::parse(code).map_err(|e| e.to_string())?;
    let admin = Admin::new(config, url)?;
    let a = admin.send(
        reqwest::Method::POST,
        admin.url(&["admin", "offline-deactivations"], &[]),
        Some(&serde_json::json!({ "code": code.trim() })),
    )?;
    if a.status != 200 {
        return Err(answer_error(a.status, &a.body));
    }
    let d: api::Deactivated = serde_json::from_str(&a.body).map_err(|e| e.to_string())?;
    println!(
        "{}: activation {} deactivated, its seat freed",
        d.license_id, d.activation_id
    );
    Ok(())
}
