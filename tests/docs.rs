//! The book and the README stay navigable and complete: every relative link resolves,
//! every error code the protocol defines is in the errors reference, and the README
//! stays the short entry it is meant to be.
#![cfg(unix)] // The book's commands are shell; its links are checked on the Linux run.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every Markdown file under docs/.
fn pages() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "md") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&root().join("docs"), &mut out);
    out.sort();
    out.insert(0, root().join("README.md"));
    out
}

/// The targets of `[text](target)` links outside code blocks and code spans.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Code spans can hold `](`: drop them first.
        let prose: String = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
        let mut rest = prose.as_str();
        while let Some(i) = rest.find("](") {
            rest = &rest[i + 2..];
            if let Some(end) = rest.find(')') {
                out.push(rest[..end].to_string());
                rest = &rest[end..];
            }
        }
    }
    out
}

#[test]
fn every_relative_link_in_the_readme_and_the_book_resolves() {
    let mut broken = Vec::new();
    let pages = pages();
    assert!(pages.len() > 20, "the book has its pages: {pages:?}");
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        for target in links(&text) {
            if target.starts_with("http://") || target.starts_with("https://") {
                continue;
            }
            let (path, anchor) = target.split_once('#').unwrap_or((&target, ""));
            let file = if path.is_empty() {
                page.clone()
            } else {
                page.parent().unwrap().join(path)
            };
            if !file.exists() {
                broken.push(format!("{}: {target}", page.display()));
                continue;
            }
            if !anchor.is_empty() && file.extension().is_some_and(|x| x == "md") {
                // GitHub's anchors: a heading, lower case, spaces to dashes, punctuation out.
                let headings: Vec<String> = std::fs::read_to_string(&file)
                    .unwrap()
                    .lines()
                    .filter(|l| l.starts_with('#'))
                    .map(|l| {
                        l.trim_start_matches('#')
                            .trim()
                            .to_lowercase()
                            .chars()
                            .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
                            .map(|c| if c == ' ' { '-' } else { c })
                            .collect()
                    })
                    .collect();
                if !headings.iter().any(|h| h == anchor) {
                    broken.push(format!("{}: {target} (no such heading)", page.display()));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// The codes of the `pub mod NAME` in `file` (its `&str` constants), each checked to be
/// in the errors reference; returns how many.
fn codes_of_module_are_documented(file: &str, module: &str) -> usize {
    let source = std::fs::read_to_string(root().join(file)).unwrap();
    let codes = &source[source.find(&format!("pub mod {module}")).unwrap()..];
    let codes = &codes[..codes.find("\n}").unwrap()];
    let reference = std::fs::read_to_string(root().join("docs/reference/errors.md")).unwrap();
    let mut seen = 0;
    for line in codes.lines() {
        let Some((_, value)) = line.split_once("&str = \"") else {
            continue;
        };
        let code = value.trim_end_matches("\";");
        seen += 1;
        assert!(
            reference.contains(&format!("`{code}`")),
            "docs/reference/errors.md does not explain `{code}` ({file})"
        );
    }
    seen
}

#[test]
fn every_error_code_of_the_protocol_is_in_the_errors_reference() {
    let seen = codes_of_module_are_documented("src/protocol.rs", "codes");
    assert!(seen >= 15, "read {seen} codes from src/protocol.rs");
}

#[test]
fn every_error_code_of_the_server_is_in_the_errors_reference() {
    let seen = codes_of_module_are_documented("server/src/http/error.rs", "server_codes");
    assert!(
        seen >= 14,
        "read {seen} codes from server/src/http/error.rs"
    );
}

#[test]
fn the_readme_stays_a_short_entry_into_the_book() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let lines = readme.lines().count();
    assert!(
        lines <= 200,
        "README.md has {lines} lines: move detail into docs/"
    );
    assert!(
        readme.contains("](docs/README.md)"),
        "the README leads into the book"
    );
}

/// A fenced block of a page: its info string (`sh`, `sh skip: why`, `text`, `c file=app.c`),
/// its body and the line it starts on.
struct Block {
    info: String,
    body: String,
    line: usize,
}

fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in text.lines().enumerate() {
        match (&mut open, line.trim_start().strip_prefix("```")) {
            (None, Some(info)) => {
                open = Some(Block {
                    info: info.trim().to_string(),
                    body: String::new(),
                    line: i + 1,
                })
            }
            (Some(_), Some(_)) => out.push(open.take().unwrap()),
            (Some(b), None) => {
                b.body.push_str(line);
                b.body.push('\n');
            }
            (None, None) => {}
        }
    }
    out
}

/// Whether `pattern` (with `...` standing for any text) matches all of `line`.
fn matches(pattern: &str, line: &str) -> bool {
    let parts: Vec<&str> = pattern.split("...").collect();
    let mut rest = line.trim_end();
    let last = parts.len() - 1;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i == last {
            return rest.ends_with(part);
        } else {
            let Some(at) = rest.find(part) else {
                return false;
            };
            rest = &rest[at + part.len()..];
        }
    }
    rest.is_empty()
}

/// The lines of `expected` appear in `actual` in that order (other lines may come between:
/// log lines, a background server's), each matched whole with `...` for any text.
fn expected_in(expected: &str, actual: &str) -> Result<(), String> {
    let mut lines = actual.lines();
    for want in expected.lines().filter(|l| !l.trim().is_empty()) {
        if !lines.any(|got| matches(want.trim_end(), got)) {
            return Err(format!("no line matching {want:?} (in order)"));
        }
    }
    Ok(())
}

#[test]
fn output_patterns_match_whole_lines_in_order() {
    assert!(matches(
        "tier=team source=seat ...",
        "tier=team source=seat status=ok"
    ));
    assert!(matches("a...c...e", "abcde"));
    assert!(!matches("tier=team", "tier=team source=seat"));
    assert!(!matches("...seat", "seat holder"));
    assert!(expected_in("one\n\nthree", "one\ntwo\nthree\n").is_ok());
    assert!(expected_in("three\none", "one\ntwo\nthree\n").is_err());
}

/// What a page's runnable blocks become: one bash script, run from the repository's root.
/// `sh` blocks run in order in one shell (so `cd` and `export` carry over), each one's
/// output kept in `$LIC4ES_DOC_OUT/N`; a block tagged `file=NAME` (C, Python, Java) is
/// written to NAME in the shell's directory at that point. The ports 8700 and 8701 are
/// replaced by free ones. Servers a block starts in the background are stopped at the end.
fn page_script(blocks: &[Block], ports: (u16, u16)) -> (String, Vec<(usize, usize, String)>) {
    let mut script =
        String::from("set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true; wait' EXIT\n");
    // (block number, line, expected output) for every `sh` block followed by a `text` one.
    let mut expectations = Vec::new();
    for (n, b) in blocks.iter().enumerate() {
        let body = b
            .body
            .replace("8700", &ports.0.to_string())
            .replace("8701", &ports.1.to_string());
        let mut words = b.info.split_whitespace();
        let lang = words.next().unwrap_or_default();
        let file = words.find_map(|w| w.strip_prefix("file="));
        if let Some(file) = file {
            script.push_str(&format!(
                "cat > {file} <<'LIC4ES_DOC_EOF'\n{body}LIC4ES_DOC_EOF\n"
            ));
        } else if b.info == "sh" {
            script.push_str(&format!(
                "echo '::: line {line}' >&2\n{{\n{body}\n}} > \"$LIC4ES_DOC_OUT/{n}\" 2>&1 \
                 || {{ s=$?; cat \"$LIC4ES_DOC_OUT/{n}\" >&2; exit $s; }}\n",
                line = b.line
            ));
            if let Some(next) = blocks.get(n + 1).filter(|x| x.info == "text") {
                expectations.push((n, b.line, next.body.clone()));
            }
        } else if lang == "sh" && !b.info.starts_with("sh skip: ") {
            panic!(
                "line {}: a shell block is `sh` (run in CI) or `sh skip: <why not>`, not {:?}",
                b.line, b.info
            );
        }
    }
    (script, expectations)
}

#[test]
fn every_shell_block_runs_or_says_why_not() {
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        // Panics on a shell block neither run nor explained.
        page_script(&blocks(&text), (1, 2));
    }
}

/// Runs every page's commands as a reader would, in this checkout: the release build the
/// README's first block makes, the server started, licenses minted, a C, Python and Java
/// host built and run against it, each expected output checked.
#[test]
#[ignore = "runs the book's commands in this checkout (a release build, the wheel, the jar, \
            servers on loopback: minutes); .ci/run runs it once its release builds are done"]
fn every_command_in_the_readme_and_the_book_runs_as_written() {
    let mut ran = 0;
    // LIC4ES_DOC_PAGES=how-to,README runs only the pages whose path has one of those.
    let only = std::env::var("LIC4ES_DOC_PAGES").unwrap_or_default();
    for page in pages() {
        let name = page.strip_prefix(root()).unwrap().display().to_string();
        if !only.is_empty() && !only.split(',').any(|o| name.contains(o)) {
            continue;
        }
        let text = std::fs::read_to_string(&page).unwrap();
        let blocks = blocks(&text);
        if !blocks.iter().any(|b| b.info == "sh") {
            continue;
        }
        let (script, expectations) = page_script(
            &blocks,
            (
                lic4es_test_support::free_port(),
                lic4es_test_support::free_port(),
            ),
        );
        let out = tempfile::tempdir().unwrap();
        let home = tempfile::tempdir().unwrap();
        eprintln!("::: {name}");
        let started = std::time::Instant::now();
        let mut child = std::process::Command::new("bash")
            // Its own process group, so that a page that hangs is stopped whole.
            .process_group(0)
            .arg("-c")
            .arg(&script)
            .current_dir(root())
            .env("LIC4ES_DOC_OUT", out.path())
            // `$HOME/.local` and `~/.softclient4es` of a reader who starts afresh.
            .env("HOME", home.path())
            .spawn()
            .unwrap();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > std::time::Duration::from_secs(600) {
                // SAFETY: a plain signal to the process group the child leads.
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                child.wait().ok();
                panic!("{name}: its commands ran for more than 10 minutes");
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        assert!(
            status.success(),
            "{name}: a command failed ({status})\n{script}"
        );
        for (n, line, expected) in expectations {
            let actual = std::fs::read_to_string(out.path().join(n.to_string())).unwrap();
            if let Err(e) = expected_in(&expected, &actual) {
                panic!("{name}:{line}: {e}\n--- expected\n{expected}--- got\n{actual}");
            }
        }
        eprintln!("::: {name}: {:.0?}", started.elapsed());
        ran += 1;
    }
    assert!(
        ran >= 3 || !only.is_empty(),
        "ran the commands of {ran} pages"
    );
}
