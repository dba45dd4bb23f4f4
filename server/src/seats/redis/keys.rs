//! Where a license's seats and the indexes live in Redis (the layout is in the
//! module's documentation).

/// Due sessions lapsed per call; the rest wait for the next call (the online count does
/// not depend on them being reaped).
pub(super) const REAP_BUDGET: u32 = 100;
/// Due sessions lapsed before a listing (an operator's call, not on the hot path).
pub(super) const LIST_REAP_BUDGET: u32 = 10_000;
/// Index entries checked per sweep for sessions that are gone.
pub(super) const INDEX_SWEEP: u32 = 500;
/// Lapses kept per license for the audit trail when nobody collects them.
pub(super) const MAX_PENDING_LAPSES: i64 = 1000;
/// Sorted set (score 0, so in id order) of licenses that have had sessions (never
/// pruned: removing one could race an acquire on another instance and hide its sessions;
/// it holds one entry per license).
pub(super) const LICENSE_INDEX_KEY: &str = "lic4es:license-index";
/// The set an earlier version kept the licenses in; moved into the index once.
pub(super) const OLD_LICENSES_KEY: &str = "lic4es:licenses";
/// The fleet's summary (JSON), shared by every instance.
pub(super) const SUMMARY_KEY: &str = "lic4es:summary";
/// Held by the instance computing the summary, so that one does it per interval.
pub(super) const SUMMARY_LEASE_KEY: &str = "lic4es:summary-lease";
/// How long a summary lease lasts at most (a crashed holder's lease runs out).
pub(super) const SUMMARY_LEASE_MS: u64 = 30_000;
/// Licenses read per round trip when the whole index is walked.
pub(super) const INDEX_CHUNK: usize = 1000;
/// Session ids a page script looks at at most (a state filter may skip most of them).
pub(super) const PAGE_SCAN_MAX: u32 = 10_000;
/// Licenses whose lapses one collection takes at most (the rest wait for the next ones).
pub(super) const LAPSE_LICENSES: usize = 200;
/// Licenses a page of every license's sessions visits at most.
pub(super) const PAGE_LICENSES_MAX: usize = 1000;
/// The session index (session id → license) is spread over this many hashes, each in
/// its own cluster slot, so that no one node holds (and serves) all of it.
pub(super) const SESSION_SHARDS: u32 = 64;
/// The one hash an earlier version kept the session index in; moved into the shards once.
pub(super) const OLD_SESSION_INDEX_KEY: &str = "lic4es:session-license";
/// Index entries moved per round trip from the earlier version's hash.
pub(super) const MOVE_CHUNK: u32 = 1000;

/// The session index's hash that holds `session_id`'s entry. The hash is FNV-1a, fixed
/// forever: every instance, of every version, must find the same shard.
pub(super) fn session_shard(session_id: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in session_id.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h % SESSION_SHARDS
}

pub(super) fn session_index_key(shard: u32) -> String {
    format!("lic4es:session-license:{{{shard:02}}}")
}

/// The keys of one license, in script order.
pub(super) fn keys(license: &str) -> [String; 7] {
    [
        format!("{{lic:{license}}}:online"),
        format!("{{lic:{license}}}:offline"),
        format!("{{lic:{license}}}:sessions"),
        format!("{{lic:{license}}}:lapsed"),
        format!("{{lic:{license}}}:ids"),
        format!("{{lic:{license}}}:limit"),
        format!("{{lic:{license}}}:grants"),
    ]
}
