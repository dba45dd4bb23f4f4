//! The command line: every command, its arguments and their help (clap).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use license_server::domain::{LicenseId, NoOtherKeys, Overrides, Seats, Secs, Tier};
use license_server::service::licenses::Terms;

/// Every command's help: `usage:` and the usage clap derives, what the command does,
/// its arguments.
pub(crate) const HELP: &str = "usage: {usage}\n\n{about-with-newline}\n{all-args}{after-help}";

/// `license-server`: serve the license API, or manage keys, licenses, API keys and seats.
#[derive(Parser)]
#[command(
    name = "license-server",
    version,
    help_template = HELP,
    subcommand_help_heading = "commands",
    about = "Serve the license API, or manage its signing key, licenses, API keys and seats.\n\
             Every setting has a default; see docs/reference/server.md for the config file."
)]
pub(crate) struct Cli {
    /// The config file (TOML).
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

#[derive(Subcommand)]
#[command(help_template = HELP)]
pub(crate) enum Command {
    /// Serve the API (the default).
    ///
    /// Listens on `listen` (default 127.0.0.1:8700); the store and the signing key live
    /// under `data-dir` (default ./license-server-data).
    #[command(help_template = HELP)]
    Serve,
    /// Create the signing key under `data-dir` and print the public JWK Set.
    #[command(help_template = HELP)]
    Keygen,
    /// Print the public JWK Set (what engines configure as `public-keys`).
    ///
    /// The signing key, the next one (`key add`) and the retired ones (`key activate`).
    #[command(help_template = HELP)]
    Jwks,
    /// Rotate the signing key: add the next one, activate it, retire the old one.
    ///
    /// Each prints the public JWK Set that results. A running server signs with a newly
    /// activated key once restarted.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Print a signed static token for a license.
    ///
    /// With --tier and --days, create the license first (an existing ID is refused:
    /// change it with `license update`).
    #[command(help_template = HELP)]
    Mint {
        #[command(flatten)]
        license: LicenseArgs,
        /// Where the token is refreshed: a URL, or `default` for this server's endpoint.
        #[arg(long, value_name = "URL|default")]
        refresh_url: Option<String>,
    },
    /// Create or revoke API keys.
    #[command(subcommand, help_template = HELP)]
    ApiKey(ApiKeyCommand),
    /// Change, revoke or show licenses.
    #[command(subcommand, help_template = HELP)]
    License(LicenseCommand),
    /// List or end seat sessions of the running server.
    #[command(subcommand, help_template = HELP)]
    Sessions(SessionsCommand),
    /// Answer a site without the internet: activate it, or free its seat.
    #[command(subcommand, help_template = HELP)]
    Offline(OfflineCommand),
    /// Judge each license's offline periods of the last 30 days.
    ///
    /// Read from the configured store: flagged licenses (more than 5 offline cycles and
    /// more than 20 days offline) are listed. Exit 3 when any is flagged.
    #[command(help_template = HELP)]
    Abuse {
        /// List every license with offline periods, not only the flagged ones.
        #[arg(long)]
        all: bool,
    },
    /// Print the audit trail from the configured store, newest first.
    #[command(help_template = HELP)]
    Audit {
        /// Only this license's entries.
        #[arg(long, value_name = "ID")]
        license: Option<LicenseId>,
        /// At most this many entries (1 to 1000).
        #[arg(long, value_name = "N", default_value_t = 50)]
        limit: u32,
        /// Continue after the entry with this id.
        #[arg(long, value_name = "ID")]
        before: Option<i64>,
    },
    /// Print a license's seat usage: peak and mean seats in use, refusals and offline
    /// session-hours per hour or day.
    ///
    /// Read from the configured store; by default the last 30 days by day.
    #[command(help_template = HELP)]
    Usage {
        /// The license.
        #[arg(long, value_name = "ID")]
        license: LicenseId,
        /// From this time (RFC 3339) or day (2026-11-01).
        #[arg(long, value_name = "TIME")]
        from: Option<String>,
        /// Up to this time or day (not included); by default now.
        #[arg(long, value_name = "TIME")]
        to: Option<String>,
        /// `hour` or `day`.
        #[arg(long, value_name = "BUCKET", default_value = "day")]
        bucket: String,
        /// Print CSV (a header line, then one line per bucket).
        #[arg(long)]
        csv: bool,
    },
    /// Run an on-site relay: serve engines on a customer's network the seats of a vendor's
    /// grant, signed with the relay's own key (docs/how-to/relay.md).
    ///
    /// `--config` is the relay's own file (listen, data-dir, grant-file, relay-key-file,
    /// upstream, api-key).
    #[command(help_template = HELP)]
    Relay {
        #[command(subcommand)]
        command: Option<RelayCommand>,
    },
    /// Apply the pending schema migrations and list what the store records.
    ///
    /// The configured store: SQLite or PostgreSQL. `serve` applies them at start as well.
    #[command(help_template = HELP)]
    Migrate,
}

/// The license a `mint` or `api-key create` is for, and a new one's terms.
#[derive(Args)]
pub(crate) struct LicenseArgs {
    /// The license id.
    #[arg(long, value_name = "ID")]
    pub(crate) sub: LicenseId,
    /// Create the license with this tier (and --days).
    #[arg(long, value_name = "T")]
    pub(crate) tier: Option<Tier>,
    #[command(flatten)]
    pub(crate) terms: TermArgs,
}

/// A license's terms, to create it with or to change.
#[derive(Args)]
pub(crate) struct TermArgs {
    /// The term in days (expiry N days from now).
    #[arg(long, value_name = "N")]
    pub(crate) days: Option<i64>,
    /// The licensee.
    #[arg(long, value_name = "NAME")]
    pub(crate) org: Option<String>,
    /// Seats, overriding the tier's.
    #[arg(long, value_name = "N|unlimited", value_parser = Seats::parse)]
    pub(crate) seats: Option<Seats>,
    /// Offline grace in days, overriding the tier's.
    #[arg(long, value_name = "N")]
    pub(crate) offline_grace_days: Option<u32>,
    /// Heartbeat interval, overriding the tier's.
    #[arg(long, value_name = "SECONDS")]
    pub(crate) heartbeat_interval: Option<u64>,
    /// Air-gapped activation lifetime in days, overriding the tier's (0: none allowed).
    #[arg(long, value_name = "N")]
    pub(crate) offline_activation_days: Option<u32>,
    /// Longest borrow, overriding the tier's: seconds or a duration (`14d`; 0: none).
    #[arg(long, value_name = "DURATION", value_parser = Secs::parse)]
    pub(crate) max_borrow: Option<Secs>,
    /// An on-site relay's grant lifetime in days, overriding the tier's (0: no relays).
    #[arg(long, value_name = "N")]
    pub(crate) relay_grant_days: Option<u32>,
}

#[derive(Subcommand)]
pub(crate) enum ApiKeyCommand {
    /// Print a new API key for a license (only its hash is stored).
    ///
    /// With --tier and --days, create the license first, with optional overrides of its
    /// tier policy (an existing ID is refused: change it with `license update`).
    #[command(help_template = HELP)]
    Create {
        #[command(flatten)]
        license: LicenseArgs,
    },
    /// Revoke an API key.
    #[command(help_template = HELP)]
    Revoke {
        /// The key.
        key: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum LicenseCommand {
    /// Change a license's tier.
    #[command(help_template = HELP)]
    SetTier {
        /// The license id.
        #[arg(long, value_name = "ID")]
        sub: LicenseId,
        /// The new tier.
        #[arg(long, value_name = "T")]
        tier: Tier,
    },
    /// Change a license's terms.
    ///
    /// --days sets the expiry N days from now. A revocation stays.
    #[command(help_template = HELP)]
    Update {
        /// The license id.
        #[arg(long, value_name = "ID")]
        sub: LicenseId,
        /// New tier.
        #[arg(long, value_name = "T")]
        tier: Option<Tier>,
        /// Trial or not.
        #[arg(long, value_name = "true|false")]
        trial: Option<bool>,
        #[command(flatten)]
        terms: TermArgs,
    },
    /// Revoke a license.
    #[command(help_template = HELP)]
    Revoke {
        /// The license id.
        #[arg(long, value_name = "ID")]
        sub: LicenseId,
    },
    /// Print a license and its effective policy.
    #[command(help_template = HELP)]
    Show {
        /// The license id.
        #[arg(long, value_name = "ID")]
        sub: LicenseId,
    },
}

#[derive(Subcommand)]
pub(crate) enum KeyCommand {
    /// Create the next signing key: published (by `jwks` now, by a server's
    /// /.well-known/jwks.json once it restarts), signing once activated.
    ///
    /// Give the engines the printed set (their `public-keys`, or your pinned build)
    /// before `key activate`.
    #[command(help_template = HELP)]
    Add,
    /// Make the next key the signing key; the old one's public half stays published.
    #[command(help_template = HELP)]
    Activate,
    /// Stop publishing a retired key: tokens it signed are refused where engines take the
    /// new set. Retire it once they have expired.
    #[command(help_template = HELP)]
    Retire {
        /// The key's id (`kid`).
        kid: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum SessionsCommand {
    /// List seat sessions (online and offline) of the running server.
    ///
    /// Through its admin API (`admin-token`; URL default `public-url`, else
    /// http://LISTEN).
    #[command(help_template = HELP)]
    List {
        /// Only this license's sessions.
        #[arg(long, value_name = "ID")]
        license: Option<LicenseId>,
        /// The server's URL.
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
    /// End a session; its engine's next heartbeat is refused and it acquires again.
    #[command(help_template = HELP)]
    Kick {
        /// The session.
        session_id: String,
        /// The server's URL.
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
}

impl TermArgs {
    /// The terms given, with a new tier and trial when given too.
    pub(crate) fn into_terms(self, tier: Option<Tier>, trial: Option<bool>) -> Terms {
        Terms {
            overrides: self.overrides(),
            tier,
            days: self.days,
            org_name: self.org,
            trial,
            no_other_keys: NoOtherKeys,
        }
    }

    /// The license's own terms given.
    pub(crate) fn overrides(&self) -> Overrides {
        Overrides {
            seats: self.seats,
            offline_grace_days: self.offline_grace_days,
            heartbeat_interval: self.heartbeat_interval,
            offline_activation_days: self.offline_activation_days,
            max_borrow: self.max_borrow,
            relay_grant_days: self.relay_grant_days,
        }
    }
}

/// A request a site carried to the vendor, and where its answer goes.
#[derive(Args)]
pub(crate) struct Carried {
    /// The request file (its JSON or its one-line form), or `-` for standard input.
    pub(crate) request: String,
    /// Write the answer (the response, the grant) here instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
    /// The server's URL.
    #[arg(long, value_name = "URL")]
    pub(crate) url: Option<String>,
}

#[derive(Subcommand)]
pub(crate) enum OfflineCommand {
    /// Answer an activation request (`lic4es activate-offline`) with its node-locked
    /// token, the response the site installs (`lic4es install`); its seat is held.
    ///
    /// Through the running server's admin API (`admin-token`; URL default `public-url`,
    /// else http://LISTEN), which counts the seat.
    #[command(help_template = HELP)]
    Activate(Carried),
    /// Answer an on-site relay's grant request with its grant, for the relay's
    /// `grant-file`; the grant's seats are held until it ends.
    ///
    /// Through the running server's admin API, as `activate`.
    #[command(help_template = HELP)]
    Grant(Carried),
    /// Enter a site's deactivation code (`lic4es deactivate-offline`): its seat is freed.
    #[command(help_template = HELP)]
    Deactivate {
        /// The code the site's engine printed.
        code: String,
        /// The server's URL.
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
}

#[derive(Subcommand)]
pub(crate) enum RelayCommand {
    /// Write this relay's grant request for the vendor (`license-server offline grant`):
    /// its key, its machine, the license and seats, and its usage since its last grant.
    ///
    /// The one-line form goes to standard output; `--out` writes the JSON too.
    #[command(help_template = HELP)]
    Request {
        /// The license (it comes with the license, as the API key does).
        #[arg(long, value_name = "ID")]
        license: LicenseId,
        /// Seats the relay will serve at once.
        #[arg(long, value_name = "N")]
        seats: u32,
        /// Write the request (JSON) here as well.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Send it to `upstream` with `api-key` instead, and write the grant to
        /// `grant-file`.
        #[arg(long)]
        send: bool,
    },
}
