//! A throwaway PostgreSQL cluster (Debian's `postgresql` package) on a free loopback
//! port, stopped and removed when dropped. As root, the cluster runs as the `postgres`
//! user, since PostgreSQL refuses to run as root.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct PgProc {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

fn bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").is_file())
        .collect();
    dirs.sort();
    dirs.pop()
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The `postgres` user's uid and gid.
fn owner() -> Option<(u32, u32)> {
    let name = std::ffi::CString::new("postgres").unwrap();
    // SAFETY: getpwnam with a valid C string; the result is read at once.
    unsafe {
        let pw = libc::getpwnam(name.as_ptr());
        if pw.is_null() {
            None
        } else {
            Some(((*pw).pw_uid, (*pw).pw_gid))
        }
    }
}

/// `program` run as the cluster's owner: the process itself switches user (no wrapper
/// process in between, so signals reach PostgreSQL).
fn as_owner(program: PathBuf) -> Command {
    use std::os::unix::process::CommandExt;
    let mut c = Command::new(program);
    super::on_real_clock(&mut c);
    if is_root() {
        let (uid, gid) = owner().expect("a postgres user (created by the postgresql package)");
        c.uid(uid).gid(gid).env("HOME", "/tmp");
    }
    c
}

impl PgProc {
    /// Starts one.
    pub fn start() -> PgProc {
        Self::start_with(None)
    }

    /// [`PgProc::start`] with `ssl = on`, a certificate for 127.0.0.1 issued by `ca`, and
    /// `hostssl` the only TCP entry of `pg_hba.conf`: a plain connection is refused.
    pub fn start_tls(ca: &super::tls::TestCa) -> PgProc {
        Self::start_with(Some(ca))
    }

    fn start_with(ca: Option<&super::tls::TestCa>) -> PgProc {
        // A test that needs PostgreSQL is marked ignored where it is not installed
        // (`build.rs`), so it never passes by doing nothing.
        let bin = bin_dir().expect(
            "PostgreSQL (initdb) not found: apt-get install postgresql (build.rs marks the \
             tests that need it ignored when it is not installed)",
        );
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        if is_root() {
            let ok = Command::new("chown")
                .arg("postgres")
                .arg(dir.path())
                .status()
                .unwrap()
                .success();
            assert!(ok, "chown the cluster dir");
        }
        let out = as_owner(bin.join("initdb"))
            .args([
                "-A",
                "trust",
                "-U",
                "lic4es",
                "--no-sync",
                "-E",
                "UTF8",
                "-D",
            ])
            .arg(&data)
            .output()
            .expect("initdb");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut tls_args = Vec::new();
        if let Some(ca) = ca {
            let (cert, key) = ca.issue("postgres", &["127.0.0.1", "localhost"]);
            for (from, to) in [(&cert, "server.crt"), (&key, "server.key")] {
                let path = data.join(to);
                std::fs::copy(from, &path).unwrap();
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
                if is_root() {
                    let (uid, gid) = owner().unwrap();
                    std::os::unix::fs::chown(&path, Some(uid), Some(gid)).unwrap();
                }
            }
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
            )
            .unwrap();
            tls_args = vec!["-c", "ssl=on"];
        }
        let port = super::free_port();
        let child = as_owner(bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(dir.path())
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(["-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
            .args(&tls_args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("postgres");
        let pg = PgProc { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        // Ready when its Unix socket answers (a TLS-only cluster refuses plain TCP).
        let socket = format!(
            "host={} port={port} user=lic4es dbname=postgres",
            pg.dir.path().display()
        );
        while postgres::Client::connect(&socket, postgres::NoTls).is_err() {
            assert!(Instant::now() < deadline, "postgres did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        pg
    }

    pub fn url(&self) -> String {
        format!("postgres://lic4es@127.0.0.1:{}/postgres", self.port)
    }

    /// [`PgProc::url`] with `sslmode` (and `sslrootcert` when given).
    pub fn tls_url(&self, mode: &str, root: Option<&std::path::Path>) -> String {
        let mut u = format!("{}?sslmode={mode}", self.url());
        if let Some(r) = root {
            u.push_str(&format!("&sslrootcert={}", r.display()));
        }
        u
    }
}

impl PgProc {
    /// Stops it at once (as a crash or a failover would): the backends serving the
    /// open connections first — a backend outlives a killed postmaster long enough to
    /// commit one more transaction — then the postmaster.
    pub fn kill(&mut self) {
        let postmaster = self.child.id().to_string();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid ...: the fields after the command's closing paren.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1));
            if ppid == Some(postmaster.as_str()) {
                if let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() {
                    // SAFETY: a signal to a process our own child started.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PgProc {
    fn drop(&mut self) {
        // SIGINT: PostgreSQL's fast shutdown.
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let _ = self.child.wait();
        let _ = &self.dir;
    }
}
