//! The relay's one call to the vendor: its grant request, with the license's API key.

use std::time::Duration;

use lic4es::offline::GrantRequest;
use lic4es::protocol::{paths, ErrorBody, RelayGrantAnswer};

use super::RelayError;

/// The most of an answer read: a grant is a token of a few kilobytes.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Asks `upstream` (the vendor's server) for a grant.
pub(super) async fn request_grant(
    upstream: &str,
    api_key: &str,
    req: &GrantRequest,
) -> Result<RelayGrantAnswer, RelayError> {
    let url = format!("{}{}", upstream.trim_end_matches('/'), paths::RELAY_GRANT);
    let failed = |why: String| RelayError::Upstream(format!("{url}: {why}"));
    let client = lic4es::backend::http_client(Duration::from_secs(5), Duration::from_secs(30))
        .map_err(|e| failed(e.to_string()))?;
    let body = serde_json::to_string(req).map_err(|e| failed(e.to_string()))?;
    let mut resp = client
        .post(&url)
        .bearer_auth(api_key)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| failed(e.to_string()))?;
    let status = resp.status();
    let mut answer = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| failed(e.to_string()))? {
        answer.extend_from_slice(&chunk);
        if answer.len() > MAX_ANSWER_BYTES {
            return Err(failed(format!("an answer over {MAX_ANSWER_BYTES} bytes")));
        }
    }
    if !status.is_success() {
        let e: ErrorBody = serde_json::from_slice(&answer).unwrap_or(ErrorBody {
            error: String::new(),
            message: String::from_utf8_lossy(&answer).chars().take(200).collect(),
        });
        return Err(failed(format!(
            "{} {}: {}",
            status.as_u16(),
            lic4es::log::clean(&e.error),
            lic4es::log::clean(&e.message)
        )));
    }
    serde_json::from_slice(&answer).map_err(|e| failed(format!("not a grant answer: {e}")))
}
