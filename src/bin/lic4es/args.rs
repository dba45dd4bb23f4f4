//! The command line: its commands and options (clap).

use clap::{Args, Parser, Subcommand};
use lic4es::config::DEFAULT_ISSUER;

/// Each command's usage line, as the top-level help lists them.
const USAGE: &str = "lic4es status --config FILE [--summary | --show-license] [--require-tier TIER]
       lic4es watch --config FILE [--seconds N]
       lic4es inspect TOKEN [--keys JWKS] [--issuer ISS] [--grace-days N]
       lic4es activate-offline --config FILE --license ID [--out FILE]
       lic4es install --config FILE RESPONSE
       lic4es deactivate-offline --config FILE
       lic4es version";

/// Every help: `usage:`, the usage, what the command does, its arguments.
const HELP: &str = "usage: {usage}\n\n{about-with-newline}\n{all-args}{after-help}";

/// The operator's view of the licensing engine: why am I on Community?
#[derive(Parser)]
#[command(
    name = "lic4es",
    version,
    override_usage = USAGE,
    help_template = HELP,
    subcommand_help_heading = "commands",
    after_help = "Relative `key-file` and `cache-dir` paths in a --config FILE are taken from \
                  FILE's directory (an embedding application's lic_init takes them from its \
                  working directory)."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Start the engine with FILE (JSON), print its status.
    ///
    /// --summary: one line; --show-license: the row SoftClient4ES's SHOW LICENSE shows;
    /// with --require-tier, exit 3 when the tier is below TIER (community, pro, team,
    /// enterprise).
    #[command(help_template = HELP)]
    Status {
        #[command(flatten)]
        config: ConfigArg,
        /// One line.
        #[arg(long, conflicts_with = "show_license")]
        summary: bool,
        /// The row SoftClient4ES's SHOW LICENSE shows.
        #[arg(long)]
        show_license: bool,
        /// Exit 3 when the tier is below this one.
        #[arg(long, value_name = "TIER")]
        require_tier: Option<String>,
    },
    /// Run as a host for N seconds (default 10), printing the status whenever it changes.
    ///
    /// Log lines go to stderr.
    #[command(help_template = HELP)]
    Watch {
        #[command(flatten)]
        config: ConfigArg,
        /// How long to watch.
        #[arg(long, value_name = "N", default_value_t = 10)]
        seconds: u64,
    },
    /// Decode a token and say whether it is accepted.
    ///
    /// TOKEN may be @FILE or - (stdin). Exit 0 accepted, 1 rejected, 4 nothing wrong
    /// found but the signature not checked (no --keys).
    #[command(help_template = HELP)]
    Inspect {
        /// The token, @FILE, or - for stdin.
        token: String,
        /// The JWK Set file to check the signature with.
        #[arg(long, value_name = "JWKS")]
        keys: Option<String>,
        /// The issuer expected.
        #[arg(long, value_name = "ISS", default_value = DEFAULT_ISSUER)]
        issuer: String,
        /// The grace after expiry, in days.
        #[arg(long, value_name = "N", default_value_t = 14)]
        grace_days: i64,
    },
    /// Write an air-gapped activation request for a site without the internet.
    ///
    /// The request (JSON, and one base64url line on stdout for copy and paste) goes to the
    /// vendor, who answers it with a response file (`license-server offline activate`).
    /// It waits in cache-dir for that response.
    #[command(help_template = HELP)]
    ActivateOffline {
        #[command(flatten)]
        config: ConfigArg,
        /// The license id (it comes with the license, as the API key does).
        #[arg(long, value_name = "ID")]
        license: String,
        /// Also write the request's JSON to this file.
        #[arg(long, value_name = "FILE")]
        out: Option<String>,
    },
    /// Install the vendor's response to this machine's activation request.
    ///
    /// RESPONSE is a file, @FILE or - (stdin). It must answer the request waiting in
    /// cache-dir and name this machine; the engine then runs on it until it expires.
    #[command(help_template = HELP)]
    Install {
        #[command(flatten)]
        config: ConfigArg,
        /// The response file.
        response: String,
    },
    /// Delete the installed activation and print the code that frees its seat.
    ///
    /// The vendor enters the code (`license-server offline deactivate CODE`).
    #[command(help_template = HELP)]
    DeactivateOffline {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Borrow this machine's seat for a trip without the network.
    ///
    /// Acquires a seat with the config's API key and checks it out for N seconds (at most
    /// the license's max-borrow). The next host on this cache-dir runs on the borrowed seat
    /// until its end, without the license server; the server counts it meanwhile.
    #[command(help_template = HELP)]
    Borrow {
        #[command(flatten)]
        config: ConfigArg,
        /// How long.
        #[arg(long, value_name = "N")]
        seconds: u64,
    },
    /// Give the seat borrowed on this cache-dir back before its end.
    #[command(help_template = HELP)]
    Return {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Print the version.
    #[command(help_template = HELP)]
    Version,
}

/// `--config FILE`.
#[derive(Args)]
pub(crate) struct ConfigArg {
    /// The engine config (JSON).
    #[arg(long = "config", value_name = "FILE")]
    pub(crate) path: String,
}
