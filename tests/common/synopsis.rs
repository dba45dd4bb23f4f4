//! A command reference's synopsis (the first `text` block of a page, one command per line)
//! checked against the command's own `--help`: every subcommand it shows exists, and every
//! `--flag` on its line is one that subcommand takes. A flag renamed in the code, or
//! documented and never built, fails here.

use std::path::Path;
use std::process::Command;

/// Checks each line of `page`'s synopsis that starts with `name` against the binary `command` starts. Returns
/// how many lines were checked.
pub fn check_synopsis(page: &Path, command: impl Fn() -> Command, name: &str) -> usize {
    let text = std::fs::read_to_string(page).unwrap();
    let start = text.find("```text\n").expect("the page has a synopsis") + "```text\n".len();
    let block = &text[start..start + text[start..].find("```").unwrap()];
    let mut checked = 0;
    for line in block.lines() {
        let Some(rest) = line.strip_prefix(name).and_then(|r| r.strip_prefix(' ')) else {
            continue;
        };
        let usage = rest.split('#').next().unwrap_or_default();
        // The subcommand: the leading words that are names, not placeholders or values.
        let path: Vec<&str> = usage
            .split_whitespace()
            .take_while(|w| {
                w.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !w.starts_with('-')
            })
            .collect();
        let out = command().args(&path).arg("--help").output().unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}: `{name} {}` is not a command: {}",
            page.display(),
            path.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        for flag in usage
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .filter(|w| w.starts_with("--") && w.len() > 2)
        {
            let known = help.match_indices(flag).any(|(at, _)| {
                !help[at + flag.len()..]
                    .starts_with(|c: char| c.is_ascii_alphanumeric() || c == '-')
            });
            assert!(
                known,
                "{}: `{name} {}` takes no {flag}:\n{help}",
                page.display(),
                path.join(" ")
            );
        }
        checked += 1;
    }
    checked
}
