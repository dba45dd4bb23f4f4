//! What Community grants: the vendor's features and quotas (built in, or SoftClient4ES's),
//! and what a host's config may do to them (narrow, never widen).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::show;
use super::values::{quota_map, string_list};

/// SoftClient4ES's Community features. Constant tables rather than a lazily built static,
/// so that the library holds no heap data between `lic_shutdown` and an unload.
pub const COMMUNITY_FEATURES: [&str; 6] = [
    "materialized_views",
    "jdbc_driver",
    "adbc_driver",
    "flight_sql",
    "federation",
    "repl",
];

/// SoftClient4ES's Community quotas.
pub const COMMUNITY_QUOTAS: [(&str, i64); 4] = [
    ("max_materialized_views", 1),
    ("max_result_rows", 10_000),
    ("max_clusters", 1),
    ("max_joins", 2),
];

/// The vendor's Community entitlements set at build time (`LIC4ES_COMMUNITY_FILE`: a JSON
/// object `{"features": [...], "quotas": {...}}`); empty when unset.
const BUILTIN_COMMUNITY: &str = include_str!(concat!(env!("OUT_DIR"), "/builtin_community.json"));

/// Features and quotas.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entitlements {
    /// Feature names.
    pub features: BTreeSet<String>,
    /// Quota name → limit; `None` is unlimited.
    pub quotas: BTreeMap<String, Option<i64>>,
}

impl Entitlements {
    /// The vendor's Community entitlements: set at build time, else SoftClient4ES's.
    pub fn vendor_community() -> Result<Self, String> {
        if BUILTIN_COMMUNITY.trim().is_empty() {
            return Ok(Self::community_defaults());
        }
        let v: Value = serde_json::from_str(BUILTIN_COMMUNITY)
            .map_err(|e| format!("built-in Community entitlements: {e}"))?;
        let features = match v.get("features") {
            None => BTreeSet::new(),
            Some(f) => string_list(f, "features")
                .map_err(|e| format!("built-in Community entitlements: {e}"))?
                .into_iter()
                .collect(),
        };
        let quotas = match v.get("quotas") {
            None => BTreeMap::new(),
            Some(q) => quota_map(q, "quotas")
                .map_err(|e| format!("built-in Community entitlements: {e}"))?,
        };
        Ok(Entitlements { features, quotas })
    }

    /// What `asked` (the operator's `community.features` / `community.quotas`, each
    /// `None` when not set) leaves of the vendor's `vendor` entitlements: features only
    /// among the vendor's, quotas never above the vendor's. Warnings say what was cut.
    pub fn narrowed(
        vendor: &Entitlements,
        features: Option<Vec<String>>,
        quotas: Option<BTreeMap<String, Option<i64>>>,
        warnings: &mut Vec<String>,
    ) -> Entitlements {
        let features = match features {
            None => vendor.features.clone(),
            Some(asked) => asked
                .into_iter()
                .filter(|f| {
                    let ok = vendor.features.contains(f);
                    if !ok {
                        warnings.push(format!(
                            "community.features: `{}` is not a Community feature of this \
                             product; ignored (the config can only narrow them)",
                            show(f)
                        ));
                    }
                    ok
                })
                .collect(),
        };
        let mut out = vendor.quotas.clone();
        for (name, asked) in quotas.unwrap_or_default() {
            let cap = vendor.quotas.get(&name).copied().flatten();
            let value = match (asked, cap) {
                (Some(a), Some(c)) if a > c => {
                    warnings.push(format!(
                        "community.quotas.{}: {a} is above the product's {c}; clamped to {c}",
                        show(&name)
                    ));
                    Some(c)
                }
                (None, Some(c)) => {
                    warnings.push(format!(
                        "community.quotas.{}: unlimited is above the product's {c}; clamped \
                         to {c}",
                        show(&name)
                    ));
                    Some(c)
                }
                (a, _) => a,
            };
            out.insert(name, value);
        }
        Entitlements {
            features,
            quotas: out,
        }
    }

    /// SoftClient4ES's Community entitlements.
    pub fn community_defaults() -> Self {
        Entitlements {
            features: COMMUNITY_FEATURES.iter().map(|s| s.to_string()).collect(),
            quotas: COMMUNITY_QUOTAS
                .iter()
                .map(|(k, v)| (k.to_string(), Some(*v)))
                .collect(),
        }
    }

    /// The limit for `name`; -1 when unlimited or not set.
    pub fn quota(&self, name: &str) -> i64 {
        match self.quotas.get(name) {
            Some(Some(v)) => *v,
            _ => -1,
        }
    }

    /// Whether `name` is among the features.
    pub fn has_feature(&self, name: &str) -> bool {
        self.features.contains(name)
    }
}
