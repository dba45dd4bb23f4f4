//! Versioned schema migrations, one list per backend. A database records the migrations
//! applied to it in `schema_version`; opening a store applies the pending ones in order,
//! each in the transaction that records it, and refuses a database that a newer server
//! migrated further than this one knows. `license-server migrate` does the same without
//! serving.
//!
//! A migration is never edited once released: a change to the schema is a new one.

/// One step of a schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    /// Its place in the order, from 1.
    pub version: i64,
    /// What it does, in a few words.
    pub name: &'static str,
    /// Its statements.
    pub sql: &'static str,
}

/// Both schemas' steps from one list: each step exists in both dialects, under the same
/// version and file name.
macro_rules! migrations {
    ($(($version:literal, $name:literal, $file:literal)),* $(,)?) => {
        /// The SQLite schema's steps.
        pub const SQLITE: &[Migration] = &[$(Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!("migrations/sqlite/", $file)),
        }),*];
        /// The PostgreSQL schema's steps.
        pub const POSTGRES: &[Migration] = &[$(Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!("migrations/postgres/", $file)),
        }),*];
    };
}

migrations![
    (1, "initial", "V1__initial.sql"),
    (2, "seat usage", "V2__seat_usage.sql"),
    (3, "changes", "V3__changes.sql"),
    (4, "over-budget hours", "V4__over_budget_hours.sql"),
    (5, "offline activations", "V5__offline_activations.sql"),
    (6, "borrowing", "V6__borrow.sql"),
];

/// The table that records what was applied.
pub const VERSION_TABLE: &str = "schema_version";

/// One migration as a database recorded it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Applied {
    /// Its version.
    pub version: i64,
    /// Its name.
    pub name: String,
    /// When it was applied (seconds).
    pub applied_at: i64,
}

/// The migrations of `all` still to apply to a database at version `current` (0: none
/// applied), in order; an error when the database is at a version this list does not
/// have (a newer server migrated it, or the list lost a step).
pub fn pending(all: &'static [Migration], current: i64) -> Result<&'static [Migration], String> {
    debug_assert!(all
        .iter()
        .enumerate()
        .all(|(i, m)| m.version == i as i64 + 1));
    let known = all.len() as i64;
    if current > known || current < 0 {
        return Err(format!(
            "the database is at schema version {current}, and this license-server knows \
             versions up to {known}: run the license-server that migrated it, or a newer one"
        ));
    }
    Ok(&all[current as usize..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_migrations_follow_the_recorded_version() {
        for all in [SQLITE, POSTGRES] {
            let n = all.len() as i64;
            assert_eq!(pending(all, 0).unwrap().len(), all.len());
            assert!(pending(all, n).unwrap().is_empty());
            for v in 0..n {
                assert_eq!(pending(all, v).unwrap()[0].version, v + 1);
            }
            let newer = pending(all, n + 1).unwrap_err();
            assert!(
                newer.contains(&format!("schema version {}", n + 1)),
                "{newer}"
            );
            assert!(pending(all, -1).is_err());
        }
    }

    #[test]
    fn both_backends_have_the_same_steps() {
        let names = |all: &[Migration]| all.iter().map(|m| (m.version, m.name)).collect::<Vec<_>>();
        assert_eq!(names(SQLITE), names(POSTGRES));
    }
}
