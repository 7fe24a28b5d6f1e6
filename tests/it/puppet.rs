//! Harness for tests against real Puppet software (Debian bookworm packages
//! `puppet-agent` 7.23, `puppetserver` 7.9.5, `ruby-puppetserver-ca-cli`).
//!
//! std only. Everything binds to / talks to 127.0.0.1 and keeps its state in
//! private directories under the `dir` the caller passes in (use a fresh
//! directory per test). See `PUPPET_NOTES.md` next to this file for the
//! measured behaviour of real puppetserver and stock agents.
//!
//! Skipping: when Puppet is missing, tests must FAIL unless the environment
//! variable `AUTOSIGN_ALLOW_SKIP_PUPPET=1` is set; use [`require_puppet`] at the top of
//! each test:
//! ```ignore
//! if !puppet::require_puppet("my_test") { return; }
//! ```
#![allow(dead_code)]

use std::fs;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

pub const PUPPET_BIN: &str = "/usr/bin/puppet";
pub const PUPPETSERVER_BIN: &str = "/usr/bin/puppetserver";
pub const PUPPETSERVER_JAR: &str = "/usr/share/puppetserver/puppetserver.jar";
pub const PUPPETSERVER_CONF: &str = "/etc/puppet/puppetserver/conf.d";
pub const PUPPETSERVER_SERVICES: &str = "/etc/puppet/puppetserver/services.d";
/// Environment variable that allows Puppet tests to be skipped when Puppet is missing.
pub const ALLOW_SKIP_ENV: &str = "AUTOSIGN_ALLOW_SKIP_PUPPET";
/// The certname puppetserver gives itself (its host cert carries pp_cli_auth and
/// SANs IP:127.0.0.1, DNS:localhost, DNS:<this>).
pub const SERVER_CERTNAME: &str = "puppetserver.test";
/// How long [`PuppetServer::start`] waits for the server to answer (override with
/// `AUTOSIGN_PUPPETSERVER_START_TIMEOUT=<seconds>`).
pub const START_TIMEOUT: Duration = Duration::from_secs(180);

fn start_timeout() -> Duration {
    std::env::var("AUTOSIGN_PUPPETSERVER_START_TIMEOUT")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(START_TIMEOUT)
}
/// Hard limit for one agent run (a policy executable that hangs would hang the agent:
/// puppetserver has no timeout and the agent's http_read_timeout is 10 minutes).
pub const AGENT_TIMEOUT: Duration = Duration::from_secs(300);

fn which(prog: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(prog))
        .find(|p| {
            p.metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// Is real Puppet installed (puppet, puppetserver jar, java, ruby, puppetserver ca CLI)?
pub fn puppet_available() -> bool {
    Path::new(PUPPET_BIN).is_file()
        && Path::new(PUPPETSERVER_JAR).is_file()
        && Path::new(PUPPETSERVER_BIN).is_file()
        && Path::new(PUPPETSERVER_CONF).is_dir()
        && which("java").is_some()
        && which("ruby").is_some()
}

/// Call at the top of every real-Puppet test. Returns true when Puppet is there.
/// When it is not: prints a loud message and returns false if `AUTOSIGN_ALLOW_SKIP_PUPPET=1`,
/// otherwise panics (a missing Puppet must not turn into a silently green test run).
pub fn require_puppet(test: &str) -> bool {
    if puppet_available() {
        return true;
    }
    let allowed = std::env::var(ALLOW_SKIP_ENV)
        .map(|v| v == "1" || v == "true")
        .unwrap_or(false);
    let msg = format!(
        "\n\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
         !!! {test}: real Puppet is NOT installed (need {PUPPET_BIN}, {PUPPETSERVER_JAR},\n\
         !!! java, ruby: apt-get install -y puppet-agent puppetserver ruby-puppetserver-ca-cli)\n\
         !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
    );
    if allowed {
        eprintln!("{msg}!!! SKIPPING because {ALLOW_SKIP_ENV}=1\n");
        false
    } else {
        panic!("{msg}!!! FAILING (set {ALLOW_SKIP_ENV}=1 to skip instead)\n");
    }
}

/// A free TCP port on 127.0.0.1 (bind to port 0, read it, release it).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

fn write(path: &Path, body: &str) -> Result<(), String> {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).map_err(|e| format!("mkdir {}: {e}", p.display()))?;
    }
    fs::write(path, body).map_err(|e| format!("write {}: {e}", path.display()))
}

/// Double-quoted YAML scalar.
fn yaml_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// Runs a child with a hard timeout, collecting stdout/stderr. Returns
/// (exit success, stdout, stderr, elapsed, timed_out).
fn run_with_timeout(mut cmd: Command, timeout: Duration) -> (bool, String, String, Duration, bool) {
    let start = Instant::now();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return (
                false,
                String::new(),
                format!("spawn {cmd:?}: {e}"),
                start.elapsed(),
                false,
            )
        }
    };
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let t1 = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = so.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let t2 = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = se.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if start.elapsed() > timeout => {
                timed_out = true;
                kill_group(&mut child);
                break child.wait().ok();
            }
            Ok(None) => thread::sleep(Duration::from_millis(50)),
            Err(_) => break None,
        }
    };
    let elapsed = start.elapsed();
    let out = t1.join().unwrap_or_default();
    let mut err = t2.join().unwrap_or_default();
    if timed_out {
        err.push_str(&format!("\n[harness] killed after {timeout:?}\n"));
    }
    (
        status.map(|s| s.success()).unwrap_or(false),
        out,
        err,
        elapsed,
        timed_out,
    )
}

/// SIGKILL the child's whole process group (the child was spawned with process_group(0),
/// so its pgid is its pid), then the child itself. The signal is sent from here, not by
/// a `kill` program: minimal Debian systems have none (it comes with procps).
fn kill_group(child: &mut Child) {
    if let Ok(pgid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) reads no memory of ours; a negative pid names the process group.
        // The child is not reaped yet, so its pid (the group's id) is not reused.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
}

// ---------------------------------------------------------------------------
// puppetserver
// ---------------------------------------------------------------------------

/// A puppetserver 7 (Debian's jar) in the foreground with private dirs under `dir`,
/// listening on 127.0.0.1:`port`. Killed (whole process group) on Drop.
pub struct PuppetServer {
    pub port: u16,
    pub dir: PathBuf,
    /// puppetserver's own certname (see [`SERVER_CERTNAME`]).
    pub certname: String,
    /// How long it took until it answered.
    pub startup: Duration,
    /// Debian trixie's puppetserver 8 (in the trixie root) rather than the host's 7.
    pub puppet8: bool,
    child: Option<Child>,
}

impl PuppetServer {
    /// Starts puppetserver whose `autosign` setting is `autosign` (an absolute path to an
    /// executable = policy executable, a non-executable path = autosign.conf list, or
    /// "true"/"false"), with extra environment `env` (puppetserver hands its whole
    /// environment, plus GEM_PATH, to the policy executable). Waits up to 180 s.
    pub fn start(dir: &Path, autosign: &str, env: &[(&str, &str)]) -> Result<PuppetServer, String> {
        Self::start_with(false, dir, autosign, env)
    }

    /// [`PuppetServer::start`] with trixie's puppetserver 8 in the trixie root when
    /// `puppet8` (it runs there with the same private directories under `dir`).
    pub fn start_with(
        puppet8: bool,
        dir: &Path,
        autosign: &str,
        env: &[(&str, &str)],
    ) -> Result<PuppetServer, String> {
        if puppet8 {
            if let Some(why) = puppet8_missing() {
                return Err(why);
            }
        } else if !puppet_available() {
            return Err("real Puppet is not installed".into());
        }
        let mut last_err = String::new();
        // The port is picked by bind-and-release; retry once if someone grabbed it meanwhile.
        for _attempt in 0..2 {
            let port = free_port();
            match Self::start_on(puppet8, dir, port, autosign, env) {
                Ok(s) => return Ok(s),
                Err(e) if e.contains("Address already in use") => last_err = e,
                Err(e) => return Err(e),
            }
        }
        Err(last_err)
    }

    fn start_on(
        puppet8: bool,
        dir: &Path,
        port: u16,
        autosign: &str,
        env: &[(&str, &str)],
    ) -> Result<PuppetServer, String> {
        let dir = fs::canonicalize(dir)
            .or_else(|_| {
                fs::create_dir_all(dir)?;
                fs::canonicalize(dir)
            })
            .map_err(|e| format!("dir {}: {e}", dir.display()))?;
        let d = dir.display().to_string();
        for sub in ["conf.d", "services.d", "etc", "code", "var", "run", "log"] {
            fs::create_dir_all(dir.join(sub)).map_err(|e| format!("mkdir: {e}"))?;
        }
        let _ = fs::remove_file(dir.join("log/puppetserver.log"));

        // conf.d: the package's auth.conf, web-routes.conf, ca.conf, metrics.conf (its schema
        // is required: without metrics.conf the JVM dies at init) + our own files.
        let root = if puppet8 {
            trixie_root()
        } else {
            PathBuf::from("/")
        };
        let conf_d = root.join(PUPPETSERVER_CONF.trim_start_matches('/'));
        let services_d = root.join(PUPPETSERVER_SERVICES.trim_start_matches('/'));
        for f in ["auth.conf", "web-routes.conf", "ca.conf", "metrics.conf"] {
            fs::copy(conf_d.join(f), dir.join("conf.d").join(f))
                .map_err(|e| format!("copy {f}: {e}"))?;
        }
        write(
            &dir.join("conf.d/puppetserver.conf"),
            &format!(
                "jruby-puppet: {{\n\
                 \x20 ruby-load-path: [/usr/lib/puppetserver/ruby/vendor_ruby]\n\
                 \x20 gem-home: \"{d}/var/jruby-gems\"\n\
                 \x20 gem-path: [\"{d}/var/jruby-gems\", \"/usr/lib/puppetserver/vendored-jruby-gems\"]\n\
                 \x20 server-conf-dir: \"{d}/etc\"\n\
                 \x20 server-code-dir: \"{d}/code\"\n\
                 \x20 server-var-dir: \"{d}/var\"\n\
                 \x20 server-run-dir: \"{d}/run\"\n\
                 \x20 server-log-dir: \"{d}/log\"\n\
                 \x20 max-active-instances: 1\n\
                 }}\n\
                 http-client: {{}}\n\
                 profiler: {{ enabled: false }}\n\
                 dropsonde: {{ enabled: false }}\n"
            ),
        )?;
        write(
            &dir.join("conf.d/webserver.conf"),
            &format!("webserver: {{\n  client-auth: want\n  ssl-host: 127.0.0.1\n  ssl-port: {port}\n}}\n"),
        )?;
        write(
            &dir.join("conf.d/global.conf"),
            &format!("global: {{ logging-config: \"{d}/logback.xml\" }}\n"),
        )?;
        write(
            &dir.join("logback.xml"),
            &format!(
                r#"<configuration>
  <appender name="F1" class="ch.qos.logback.core.FileAppender">
    <file>{d}/log/puppetserver.log</file>
    <append>true</append>
    <encoder><pattern>%d{{yyyy-MM-dd'T'HH:mm:ss.SSSXXX}} %-5p [%t] [%c{{2}}] %m%n</pattern></encoder>
  </appender>
  <logger name="org.eclipse.jetty" level="INFO"/>
  <logger name="org.apache.http" level="INFO"/>
  <logger name="jruby" level="info"/>
  <root level="info"><appender-ref ref="F1"/></root>
</configuration>
"#
            ),
        )?;
        // services.d: the package's service lists (bootstrap.cfg, ca.cfg) minus comments and
        // the update-check (dujour) line. ca.cfg also carries the filesystem-watch service.
        for f in ["bootstrap.cfg", "ca.cfg"] {
            let src =
                fs::read_to_string(services_d.join(f)).map_err(|e| format!("read {f}: {e}"))?;
            let kept: String = src
                .lines()
                .filter(|l| {
                    !l.trim_start().starts_with('#')
                        && !l.contains("dujour")
                        && !l.trim().is_empty()
                })
                .map(|l| format!("{l}\n"))
                .collect();
            write(&dir.join("services.d").join(f), &kept)?;
        }
        // puppet.conf read by puppetserver's JRuby Puppet.
        write(
            &dir.join("etc/puppet.conf"),
            &format!(
                "[main]\n\
                 certname = {SERVER_CERTNAME}\n\
                 server = 127.0.0.1\n\
                 ssldir = {d}/etc/ssl\n\
                 dns_alt_names = localhost,IP:127.0.0.1\n\
                 [server]\n\
                 cadir = {d}/etc/ssl/ca\n\
                 autosign = {autosign}\n"
            ),
        )?;

        let stdout =
            fs::File::create(dir.join("log/stdout.log")).map_err(|e| format!("stdout.log: {e}"))?;
        let stderr = stdout.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = if puppet8 {
            in_trixie("/usr/bin/java")
        } else {
            Command::new("java")
        };
        cmd.args([
            "-Xms256m",
            "-Xmx1g",
            // C1 only + serial GC: first start ~50 s instead of ~85-95 s on 2 cores, ~530 MB RSS.
            "-XX:TieredStopAtLevel=1",
            "-XX:+UseSerialGC",
            "-XX:+CrashOnOutOfMemoryError",
            "-Djruby.logger.class=com.puppetlabs.jruby_utils.jruby.Slf4jLogger",
            "-Djruby.lib=/usr/share/jruby/lib",
            "--add-opens",
            "java.base/sun.nio.ch=ALL-UNNAMED",
            "--add-opens",
            "java.base/java.io=ALL-UNNAMED",
            "-jar",
            PUPPETSERVER_JAR,
            "--config",
            &format!("{d}/conf.d"),
            "--bootstrap-config",
            &format!("{d}/services.d"),
            "--restart-file",
            &format!("{d}/run/restart"),
        ])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let t0 = Instant::now();
        let child = cmd.spawn().map_err(|e| format!("spawn java: {e}"))?;
        let mut server = PuppetServer {
            port,
            dir: dir.clone(),
            certname: SERVER_CERTNAME.to_string(),
            startup: Duration::ZERO,
            puppet8,
            child: Some(child),
        };
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        loop {
            if let Some(st) = server
                .child
                .as_mut()
                .unwrap()
                .try_wait()
                .map_err(|e| e.to_string())?
            {
                let log = server.log_text();
                let out = fs::read_to_string(dir.join("log/stdout.log")).unwrap_or_default();
                server.child = None;
                return Err(format!(
                    "puppetserver exited early ({st}) after {:?}\n--- stdout/stderr (tail) ---\n{}\n--- log (tail) ---\n{}",
                    t0.elapsed(),
                    tail(&out, 4000),
                    tail(&log, 4000)
                ));
            }
            if server
                .log_text()
                .contains("Puppet Server has successfully started")
                && TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
                && server.ca_dir().join("ca_crt.pem").is_file()
            {
                break;
            }
            if t0.elapsed() > start_timeout() {
                // returning drops `server`, which kills the JVM
                return Err(format!(
                    "puppetserver did not answer within {:?}\n--- log (tail) ---\n{}",
                    start_timeout(),
                    tail(&server.log_text(), 4000)
                ));
            }
            thread::sleep(Duration::from_millis(250));
        }
        server.startup = t0.elapsed();
        Ok(server)
    }

    /// Its CA directory (ca_crt.pem, ca_key.pem, ca_crl.pem, serial, inventory.txt, signed/, requests/).
    pub fn ca_dir(&self) -> PathBuf {
        self.dir.join("etc/ssl/ca")
    }

    /// puppetserver's own ssldir (certs/, private_keys/, crl.pem).
    pub fn ssldir(&self) -> PathBuf {
        self.dir.join("etc/ssl")
    }

    /// signed/<name>.pem exists.
    pub fn is_signed(&self, certname: &str) -> bool {
        self.ca_dir()
            .join("signed")
            .join(format!("{certname}.pem"))
            .is_file()
    }

    /// requests/<name>.pem exists.
    pub fn is_pending(&self, certname: &str) -> bool {
        self.ca_dir()
            .join("requests")
            .join(format!("{certname}.pem"))
            .is_file()
    }

    /// puppetserver's log (logback, INFO and up; the policy executable's stderr shows up
    /// at WARN, its stdout only at DEBUG, i.e. not at all here).
    pub fn log_text(&self) -> String {
        fs::read_to_string(self.dir.join("log/puppetserver.log")).unwrap_or_default()
    }

    /// puppetserver's own host credentials: (CA bundle, host cert, host key). The host
    /// cert carries pp_cli_auth=true and SANs IP:127.0.0.1, DNS:localhost.
    pub fn host_cert_files(&self) -> (PathBuf, PathBuf, PathBuf) {
        let s = self.ssldir();
        (
            s.join("certs/ca.pem"),
            s.join("certs").join(format!("{}.pem", self.certname)),
            s.join("private_keys")
                .join(format!("{}.pem", self.certname)),
        )
    }

    /// `puppetserver ca ARGS` against this server, authenticating with its own host cert.
    pub fn ca_cli(&self, args: &[&str]) -> (bool, String) {
        puppetserver_ca_with(
            self.puppet8,
            &self.dir.join("ca-cli"),
            self.port,
            &self.ssldir(),
            &self.certname,
            args,
        )
    }

    /// JVM resident set size in KiB (from /proc), if running.
    pub fn rss_kib(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    }

    /// Stops the JVM now (also done on Drop).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill_group(&mut c);
            let _ = c.wait();
        }
    }
}

impl Drop for PuppetServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn tail(s: &str, n: usize) -> &str {
    if s.len() <= n {
        return s;
    }
    let mut i = s.len() - n;
    while !s.is_char_boundary(i) {
        i += 1;
    }
    &s[i..]
}

// ---------------------------------------------------------------------------
// stock puppet agent
// ---------------------------------------------------------------------------

pub struct AgentRun {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    /// The agent's ssldir: certs/<name>.pem (on success), certs/ca.pem, private_keys/<name>.pem.
    pub ssldir: PathBuf,
}

/// Options for [`agent_bootstrap_with`].
#[derive(Default, Clone)]
pub struct AgentOptions<'a> {
    /// Body of `$confdir/csr_attributes.yaml`.
    pub csr_attributes_yaml: Option<&'a str>,
    /// `--dns_alt_names` (e.g. "a.example.com,IP:10.0.0.1").
    pub dns_alt_names: Option<&'a str>,
    /// `--keylength` (default 2048; Puppet's own default is 4096).
    pub keylength: Option<u32>,
    /// More command-line settings, appended last (e.g. "--debug", "--http_debug").
    pub extra_args: Vec<&'a str>,
    /// Kill the agent after this long (default [`AGENT_TIMEOUT`]).
    pub timeout: Option<Duration>,
    /// The puppet subcommand and its arguments (default `ssl bootstrap`; e.g.
    /// `agent --test` for a run that talks to the server).
    pub command: Vec<&'a str>,
    /// `--serverport` when the server is not the CA (default: the CA's port).
    pub server_port: Option<u16>,
    /// Run Debian trixie's Puppet 8 agent (in the trixie root, see [`in_trixie`])
    /// instead of the host's Puppet 7.
    pub puppet8: bool,
}

/// A stock Debian puppet agent's certificate bootstrap (`puppet ssl bootstrap`) against
/// 127.0.0.1:`port` (server and CA), all dirs private under `dir`, `--waitforcert 0`,
/// `--keylength 2048`. Stock HTTP settings (keep-alive untouched).
pub fn agent_bootstrap(
    dir: &Path,
    certname: &str,
    port: u16,
    csr_attributes_yaml: Option<&str>,
    dns_alt_names: Option<&str>,
) -> AgentRun {
    agent_bootstrap_with(
        dir,
        certname,
        port,
        &AgentOptions {
            csr_attributes_yaml,
            dns_alt_names,
            ..Default::default()
        },
    )
}

/// [`agent_bootstrap`] with all options.
pub fn agent_bootstrap_with(
    dir: &Path,
    certname: &str,
    port: u16,
    opts: &AgentOptions,
) -> AgentRun {
    let _ = fs::create_dir_all(dir.join("etc"));
    let dir = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let ssldir = dir.join("ssl");
    if let Some(y) = opts.csr_attributes_yaml {
        if let Err(e) = write(&dir.join("etc/csr_attributes.yaml"), y) {
            return AgentRun {
                success: false,
                stdout: String::new(),
                stderr: e,
                elapsed: Duration::ZERO,
                ssldir,
            };
        }
    }
    let p = port.to_string();
    let keylength = opts.keylength.unwrap_or(2048).to_string();
    let sub = |s: &str| dir.join(s).display().to_string();
    let mut args: Vec<String> = if opts.command.is_empty() {
        vec!["ssl".into(), "bootstrap".into()]
    } else {
        opts.command.iter().map(|s| s.to_string()).collect()
    };
    args.extend([
        "--certname".into(),
        certname.into(),
        "--server".into(),
        "127.0.0.1".into(),
        "--serverport".into(),
        opts.server_port
            .map_or_else(|| p.clone(), |s| s.to_string()),
        "--ca_server".into(),
        "127.0.0.1".into(),
        "--ca_port".into(),
        p,
        "--confdir".into(),
        sub("etc"),
        "--vardir".into(),
        sub("var"),
        "--ssldir".into(),
        sub("ssl"),
        "--rundir".into(),
        sub("run"),
        "--logdir".into(),
        sub("log"),
        "--codedir".into(),
        sub("code"),
        "--publicdir".into(),
        sub("pub"),
        "--waitforcert".into(),
        "0".into(),
        "--keylength".into(),
        keylength,
        "--color".into(),
        "false".into(),
    ]);
    if let Some(a) = opts.dns_alt_names {
        args.push("--dns_alt_names".into());
        args.push(a.into());
    }
    args.extend(opts.extra_args.iter().map(|s| s.to_string()));
    let mut cmd = if opts.puppet8 {
        in_trixie(PUPPET_BIN)
    } else {
        Command::new(PUPPET_BIN)
    };
    cmd.args(&args).current_dir(&dir);
    let (success, stdout, stderr, elapsed, _) =
        run_with_timeout(cmd, opts.timeout.unwrap_or(AGENT_TIMEOUT));
    AgentRun {
        success,
        stdout,
        stderr,
        elapsed,
        ssldir,
    }
}

// ---------------------------------------------------------------------------
// CSRs made by Puppet's own Ruby code
// ---------------------------------------------------------------------------

const CSR_RB: &str = r#"# Builds a CSR exactly as `puppet ssl bootstrap` does (Puppet::X509::CertProvider#create_request).
require 'puppet'
out = ARGV.shift
Puppet.initialize_settings(ARGV)
Puppet::SSL::Oids.register_puppet_oids
Puppet::SSL::Oids.load_custom_oid_file(Puppet[:trusted_oid_mapping_file])
key = OpenSSL::PKey::RSA.new(Puppet[:keylength].to_i)
csr = Puppet::X509::CertProvider.new.create_request(Puppet[:certname], key)
File.write(out + ".key", key.to_pem)
File.write(out, csr.to_pem)
"#;

/// A CSR made by Puppet's own Ruby code exactly as an agent builds it: RSA 2048,
/// challengePassword (custom_attributes, PrintableString even with '_'),
/// extension_requests (UTF8String), dns_alt_names. Returns the CSR PEM; the key is left in
/// `dir/<certname>.csr.pem.key`.
pub fn puppet_ruby_csr(
    dir: &Path,
    certname: &str,
    challenge_password: Option<&str>,
    dns_alt_names: Option<&str>,
    extension_requests: &[(&str, &str)],
) -> Result<String, String> {
    let custom: Vec<(&str, &str)> = challenge_password
        .map(|c| vec![("1.2.840.113549.1.9.7", c)])
        .unwrap_or_default();
    puppet_ruby_csr_with(dir, certname, &custom, dns_alt_names, extension_requests)
}

/// [`puppet_ruby_csr`] with arbitrary custom_attributes (OID or short name → value).
pub fn puppet_ruby_csr_with(
    dir: &Path,
    certname: &str,
    custom_attributes: &[(&str, &str)],
    dns_alt_names: Option<&str>,
    extension_requests: &[(&str, &str)],
) -> Result<String, String> {
    fs::create_dir_all(dir.join("etc")).map_err(|e| format!("mkdir: {e}"))?;
    let dir = fs::canonicalize(dir).map_err(|e| e.to_string())?;
    let yaml_path = dir.join("etc/csr_attributes.yaml");
    let _ = fs::remove_file(&yaml_path);
    if !custom_attributes.is_empty() || !extension_requests.is_empty() {
        let mut y = String::new();
        for (section, items) in [
            ("custom_attributes", custom_attributes),
            ("extension_requests", extension_requests),
        ] {
            if !items.is_empty() {
                y.push_str(section);
                y.push_str(":\n");
                for (k, v) in items {
                    y.push_str(&format!("  {}: {}\n", yaml_str(k), yaml_str(v)));
                }
            }
        }
        write(&yaml_path, &y)?;
    }
    let script = dir.join("puppet_csr.rb");
    write(&script, CSR_RB)?;
    let out = dir.join(format!("{certname}.csr.pem"));
    let _ = fs::remove_file(&out);
    let sub = |s: &str| dir.join(s).display().to_string();
    let mut cmd = Command::new("ruby");
    cmd.arg(&script).arg(&out).args([
        "--confdir".to_string(),
        sub("etc"),
        "--vardir".into(),
        sub("var"),
        "--ssldir".into(),
        sub("ssl"),
        "--rundir".into(),
        sub("run"),
        "--logdir".into(),
        sub("log"),
        "--codedir".into(),
        sub("code"),
        "--publicdir".into(),
        sub("pub"),
        "--certname".into(),
        certname.into(),
        "--keylength".into(),
        "2048".into(),
    ]);
    if let Some(a) = dns_alt_names {
        cmd.args(["--dns_alt_names", a]);
    }
    cmd.current_dir(&dir);
    let (ok, so, se, _, _) = run_with_timeout(cmd, Duration::from_secs(120));
    if !ok {
        return Err(format!("ruby CSR generation failed:\n{so}\n{se}"));
    }
    fs::read_to_string(&out).map_err(|e| format!("read {}: {e}\n{so}\n{se}", out.display()))
}

// ---------------------------------------------------------------------------
// puppetserver ca CLI
// ---------------------------------------------------------------------------

/// Writes `dir/puppet.conf` (ca_server 127.0.0.1, ca_port `port`, ssldir, certname) and runs
/// `puppetserver ca ARGS --config dir/puppet.conf`. The CLI authenticates with
/// `$ssldir/certs/$certname.pem` + `$ssldir/private_keys/$certname.pem` (must carry
/// pp_cli_auth) and trusts `$ssldir/certs/ca.pem`. Returns (exit 0, stdout+stderr).
pub fn puppetserver_ca(
    dir: &Path,
    port: u16,
    ssldir: &Path,
    certname: &str,
    args: &[&str],
) -> (bool, String) {
    puppetserver_ca_with(false, dir, port, ssldir, certname, args)
}

/// [`puppetserver_ca`] with trixie's `puppetserver ca` 2.7 (in the trixie root) when
/// `puppet8`, else the host's 2.4.
pub fn puppetserver_ca_with(
    puppet8: bool,
    dir: &Path,
    port: u16,
    ssldir: &Path,
    certname: &str,
    args: &[&str],
) -> (bool, String) {
    if let Err(e) = fs::create_dir_all(dir) {
        return (false, format!("mkdir {}: {e}", dir.display()));
    }
    let conf = dir.join("puppet.conf");
    let body = format!(
        "[main]\nca_server = 127.0.0.1\nca_port = {port}\nserver = 127.0.0.1\nserverport = {port}\nssldir = {}\ncertname = {certname}\n",
        ssldir.display()
    );
    if let Err(e) = write(&conf, &body) {
        return (false, e);
    }
    let mut cmd = if puppet8 {
        in_trixie(PUPPETSERVER_BIN)
    } else {
        Command::new(PUPPETSERVER_BIN)
    };
    cmd.arg("ca")
        .args(args)
        .arg("--config")
        .arg(&conf)
        .current_dir(dir);
    let (ok, so, se, _, _) = run_with_timeout(cmd, Duration::from_secs(120));
    (ok, format!("{so}{se}"))
}

// ---------------------------------------------------------------------------
// Puppet 8: Debian trixie's packages in a root built by scripts/trixie-root
// ---------------------------------------------------------------------------

/// Where scripts/trixie-root builds the trixie root unless told otherwise.
pub const TRIXIE_ROOT_DEFAULT: &str = "/var/cache/autosign-proxy-tests/trixie";
/// Environment variable naming another trixie root.
pub const TRIXIE_ROOT_ENV: &str = "AUTOSIGN_TRIXIE_ROOT";

/// The trixie root holding puppet-agent 8, puppetserver 8 and `puppetserver ca` 2.7.
pub fn trixie_root() -> PathBuf {
    std::env::var_os(TRIXIE_ROOT_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(TRIXIE_ROOT_DEFAULT))
}

/// What is missing to run Puppet 8 here, if anything.
pub fn puppet8_missing() -> Option<String> {
    let root = trixie_root();
    if !root.join(".autosign-trixie-ready").is_file() {
        return Some(format!(
            "no finished trixie root at {} (build it with scripts/trixie-root)",
            root.display()
        ));
    }
    for f in [
        PUPPET_BIN,
        PUPPETSERVER_BIN,
        PUPPETSERVER_JAR,
        "/usr/bin/java",
    ] {
        if !root.join(f.trim_start_matches('/')).exists() {
            return Some(format!("{f} is missing in {}", root.display()));
        }
    }
    if which("unshare").is_none() || which("chroot").is_none() {
        return Some("unshare and chroot (util-linux, coreutils) are needed".into());
    }
    // SAFETY: geteuid has no preconditions and touches no memory of ours.
    if unsafe { libc::geteuid() } != 0 {
        return Some("running Puppet 8 in the trixie root needs root (mount, chroot)".into());
    }
    None
}

/// [`require_puppet`] for Puppet 8: panics when the trixie root is missing, unless
/// `AUTOSIGN_ALLOW_SKIP_PUPPET=1`, then it says so loudly and returns false.
pub fn require_puppet8(test: &str) -> bool {
    let Some(why) = puppet8_missing() else {
        return true;
    };
    let allowed = std::env::var(ALLOW_SKIP_ENV)
        .map(|v| v == "1" || v == "true")
        .unwrap_or(false);
    let msg = format!(
        "\n\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
         !!! {test}: Puppet 8 cannot run: {why}\n\
         !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
    );
    if allowed {
        eprintln!("{msg}!!! SKIPPING because {ALLOW_SKIP_ENV}=1\n");
        false
    } else {
        panic!("{msg}!!! FAILING (set {ALLOW_SKIP_ENV}=1 to skip instead)\n");
    }
}

/// Mounts /proc, /dev and /sys into the root and the host's temp directory at the same
/// path, then chroots and runs the program in the same working directory (when the
/// root has it, as it has everything under the temp directory). It runs in a mount namespace of its own
/// (unshare), so these mounts exist only for its processes and vanish with the last of
/// them, however the test ends: nothing is left mounted on the host or in the root.
const IN_TRIXIE_SH: &str = r#"set -e
r=$1; t=$2; shift 2
mount -t proc proc "$r/proc"
mount --rbind /dev "$r/dev"
mount --rbind /sys "$r/sys"
[ -d "$r$t" ] || mkdir -p "$r$t"
mount --bind "$t" "$r$t"
exec chroot "$r" /bin/sh -c 'cd "$0" 2>/dev/null || cd /; exec "$@"' "$PWD" "$@"
"#;

/// A command that runs `program` (a path inside the root) in the trixie root, sharing this
/// machine's network (127.0.0.1 is the service under test) and its temp directory (same
/// path inside and out: the tests' directories and files are seen unchanged). Add
/// arguments, environment and a working directory (under the temp directory) as usual.
pub fn in_trixie(program: &str) -> Command {
    let tmp = fs::canonicalize(std::env::temp_dir()).unwrap_or_else(|_| std::env::temp_dir());
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "--", "/bin/sh", "-c"])
        .arg(IN_TRIXIE_SH)
        .arg("sh")
        .arg(trixie_root())
        .arg(tmp)
        .arg(program)
        .env("LANG", "C.UTF-8")
        .env("HOME", "/root");
    cmd
}

/// Runs `program args` in the trixie root with a hard timeout: (exit 0, stdout, stderr).
pub fn run_in_trixie(
    program: &str,
    args: &[&str],
    cwd: &Path,
    timeout: Duration,
) -> (bool, String, String) {
    let mut cmd = in_trixie(program);
    cmd.args(args).current_dir(cwd);
    let (ok, so, se, _, _) = run_with_timeout(cmd, timeout);
    (ok, so, se)
}
