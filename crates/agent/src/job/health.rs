//! Health checks after an update: a unit is active, a TCP port accepts, an HTTP URL answers 2xx,
//! a command exits 0.
//!
//! Each attempt has the check's timeout; a failed attempt is retried `retries` times, with the
//! check's delay in between. The result says how many attempts were made and what the last one
//! saw. A command runs without a shell, with an environment of `PATH` and `LANG` only, through
//! [`crate::process`]. Units are asked through [`Systemd`].
//!
//! FIXME: `https://` URLs fail with a message saying they are not checked yet; a TLS client
//! (rustls, already a dependency of the agent) with the machine's roots would fix it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use patchwarden_protocol::{CheckKind, CheckResult, HealthCheck};

use super::systemd::Systemd;
use crate::process::{self, Invocation};

/// The most of an HTTP answer read to find its status line.
const STATUS_LINE_LIMIT: usize = 8 * 1024;

/// Runs every check in order.
pub fn run_checks(
    checks: &[HealthCheck],
    systemd: &dyn Systemd,
    after_rollback: bool,
) -> Vec<CheckResult> {
    checks.iter().map(|check| run_check(check, systemd, after_rollback)).collect()
}

/// One check, with its retries.
pub fn run_check(check: &HealthCheck, systemd: &dyn Systemd, after_rollback: bool) -> CheckResult {
    let timeout = Duration::from_secs(u64::from(check.timeout_seconds.max(1)));
    let mut attempts = 0;
    loop {
        attempts += 1;
        let attempt = attempt(&check.check, timeout, systemd);
        let last = attempts > check.retries;
        if attempt.is_ok() || last {
            let (passed, detail) = match attempt {
                Ok(detail) => (true, detail),
                Err(detail) => (false, detail),
            };
            return CheckResult {
                check: check.check.describe(),
                passed,
                attempts,
                detail,
                after_rollback,
            };
        }
        super::pause(Duration::from_secs(u64::from(check.retry_delay_seconds)));
    }
}

/// One attempt: `Ok` with what passed, `Err` with what failed.
fn attempt(kind: &CheckKind, timeout: Duration, systemd: &dyn Systemd) -> Result<String, String> {
    match kind {
        CheckKind::SystemdUnit { unit } => match systemd.unit_active(unit) {
            Ok(true) => Ok(format!("{unit} is active")),
            Ok(false) => Err(format!("{unit} is not active")),
            Err(error) => Err(error.to_string()),
        },
        CheckKind::TcpPort { host, port } => {
            connect(host, *port, timeout).map(|address| format!("{address} accepted"))
        }
        CheckKind::Http { url } => http_get(url, timeout),
        CheckKind::Command { argv } => run_command(argv, timeout),
    }
}

/// Connects to the first address of `host` that accepts within the timeout.
fn connect(host: &str, port: u16, timeout: Duration) -> Result<SocketAddr, String> {
    let addresses: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|error| format!("cannot resolve {host}: {error}"))?
        .collect();
    let mut last_error = format!("{host} has no address");
    for address in addresses {
        match TcpStream::connect_timeout(&address, timeout) {
            Ok(_) => return Ok(address),
            Err(error) => last_error = format!("{address}: {error}"),
        }
    }
    Err(last_error)
}

/// A plain-HTTP GET; 2xx passes.
fn http_get(url: &str, timeout: Duration) -> Result<String, String> {
    let target = HttpTarget::parse(url)?;
    let deadline = Instant::now() + timeout;
    let addresses: Vec<SocketAddr> = (target.host.as_str(), target.port)
        .to_socket_addrs()
        .map_err(|error| format!("cannot resolve {}: {error}", target.host))?
        .collect();
    let address = addresses.first().ok_or_else(|| format!("{} has no address", target.host))?;
    let mut stream = TcpStream::connect_timeout(address, timeout)
        .map_err(|error| format!("{address}: {error}"))?;
    let remaining =
        || deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
    stream.set_write_timeout(Some(remaining())).map_err(|error| error.to_string())?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: patchwarden-agent\r\nConnection: close\r\n\r\n",
        target.path, target.host_header
    );
    stream.write_all(request.as_bytes()).map_err(|error| format!("{url}: {error}"))?;

    // Read until the status line is complete.
    let mut answer = Vec::new();
    let mut chunk = [0u8; 1024];
    while !answer.contains(&b'\n') && answer.len() < STATUS_LINE_LIMIT {
        stream.set_read_timeout(Some(remaining())).map_err(|error| error.to_string())?;
        let read = stream.read(&mut chunk).map_err(|error| format!("{url}: {error}"))?;
        if read == 0 {
            break;
        }
        answer.extend_from_slice(&chunk[..read]);
    }
    let text = String::from_utf8_lossy(&answer);
    let status_line = text.lines().next().unwrap_or_default().trim().to_owned();
    let status = status_line
        .strip_prefix("HTTP/")
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| format!("{url} answered '{status_line}', not an HTTP status line"))?;
    if (200..300).contains(&status) {
        Ok(format!("{url} answered {status_line}"))
    } else {
        Err(format!("{url} answered {status_line}"))
    }
}

/// The parts of an `http://` URL a GET needs.
#[derive(Debug, PartialEq, Eq)]
struct HttpTarget {
    host: String,
    port: u16,
    /// `host` or `host:port` as sent in the `Host` header.
    host_header: String,
    path: String,
}

impl HttpTarget {
    fn parse(url: &str) -> Result<Self, String> {
        if url.starts_with("https://") {
            return Err(format!("{url}: https is not checked yet, only http"));
        }
        let rest =
            url.strip_prefix("http://").ok_or_else(|| format!("'{url}' is not an http:// URL"))?;
        let (authority, path) = match rest.find(['/', '?']) {
            Some(at) if rest[at..].starts_with('/') => (&rest[..at], rest[at..].to_owned()),
            Some(at) => (&rest[..at], format!("/{}", &rest[at..])),
            None => (rest, "/".to_owned()),
        };
        let path = path.split('#').next().unwrap_or("/").to_owned();
        if authority.contains('@') {
            return Err(format!("'{url}': credentials in a health check URL are refused"));
        }
        // `host`, `host:port`, `[v6]` or `[v6]:port`.
        let (host, port_text) = match authority.strip_prefix('[') {
            Some(bracketed) => {
                let (host, after) = bracketed
                    .split_once(']')
                    .ok_or_else(|| format!("'{url}': unclosed '[' in the host"))?;
                (host, after.strip_prefix(':'))
            }
            None => match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            },
        };
        let port = match port_text {
            Some(port) => port.parse().map_err(|_| format!("'{url}': bad port '{port}'"))?,
            None => 80,
        };
        if host.is_empty() {
            return Err(format!("'{url}' has no host"));
        }
        Ok(HttpTarget {
            host: host.to_owned(),
            port,
            host_header: authority.to_owned(),
            path: if path.is_empty() { "/".into() } else { path },
        })
    }
}

/// A declared command; exit 0 passes.
fn run_command(argv: &[String], timeout: Duration) -> Result<String, String> {
    let (program, args) = argv.split_first().ok_or("the command is empty")?;
    let invocation = Invocation::new(program)
        .args(args)
        .env("PATH", process::DEFAULT_PATH)
        .env("LANG", "C.UTF-8")
        .timeout(timeout);
    let shown = invocation.display();
    match invocation.run() {
        Ok(_) => Ok(format!("`{shown}` exited 0")),
        Err(error) => Err(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;
    use std::thread;

    use super::*;
    use crate::job::systemd::SystemdError;
    use crate::job::transient::WrappedCommand;

    #[derive(Debug)]
    struct NoSystemd;

    impl Systemd for NoSystemd {
        fn unit_active(&self, unit: &str) -> Result<bool, SystemdError> {
            Ok(unit == "up.service")
        }
        fn run_transient(&self, _: &str, _: &WrappedCommand) -> Result<(), SystemdError> {
            unreachable!("checks start no runs")
        }
        fn reboot(&self) -> Result<(), SystemdError> {
            unreachable!("checks do not reboot")
        }
    }

    fn check(kind: CheckKind, retries: u32) -> HealthCheck {
        HealthCheck { check: kind, timeout_seconds: 2, retries, retry_delay_seconds: 0 }
    }

    /// A server on 127.0.0.1 that answers each connection with `status`.
    fn serve(status: &'static str, connections: usize) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        thread::spawn(move || {
            for stream in listener.incoming().take(connections) {
                let mut stream = stream.unwrap();
                let mut request = [0u8; 1024];
                let _ = stream.read(&mut request);
                let _ = stream.write_all(format!("HTTP/1.1 {status}\r\n\r\n").as_bytes());
            }
        });
        port
    }

    #[test]
    fn urls_are_split_into_host_port_and_path() {
        let parse = |url| HttpTarget::parse(url);
        assert_eq!(
            parse("http://127.0.0.1:8080/health?deep=1").unwrap(),
            HttpTarget {
                host: "127.0.0.1".into(),
                port: 8080,
                host_header: "127.0.0.1:8080".into(),
                path: "/health?deep=1".into()
            }
        );
        assert_eq!(parse("http://localhost").unwrap().path, "/");
        assert_eq!(parse("http://localhost?x").unwrap().path, "/?x");
        let v6 = parse("http://[::1]:81/").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 81));
        assert_eq!(parse("http://[::1]/").unwrap().port, 80);
        assert!(parse("https://localhost/").unwrap_err().contains("not checked yet"));
        assert!(parse("ftp://localhost/").is_err());
        assert!(parse("http://user:pw@localhost/").is_err());
        assert!(parse("http://localhost:http/").is_err());
    }

    #[test]
    fn http_passes_on_2xx_only() {
        let ok = serve("204 No Content", 1);
        let result = run_check(
            &check(CheckKind::Http { url: format!("http://127.0.0.1:{ok}/") }, 0),
            &NoSystemd,
            false,
        );
        assert!(result.passed, "{result:?}");
        let broken = serve("503 Service Unavailable", 2);
        let result = run_check(
            &check(CheckKind::Http { url: format!("http://127.0.0.1:{broken}/x") }, 1),
            &NoSystemd,
            true,
        );
        assert!(!result.passed);
        assert_eq!(result.attempts, 2);
        assert!(result.after_rollback);
        assert!(result.detail.contains("503"), "{}", result.detail);
    }

    #[test]
    fn tcp_commands_and_units_pass_and_fail() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let open = listener.local_addr().unwrap().port();
        drop(listener);
        let listener = TcpListener::bind(("127.0.0.1", open)).unwrap();
        let passes = |kind| run_check(&check(kind, 0), &NoSystemd, false).passed;
        assert!(passes(CheckKind::TcpPort { host: "127.0.0.1".into(), port: open }));
        drop(listener);
        assert!(!passes(CheckKind::TcpPort { host: "127.0.0.1".into(), port: open }));
        assert!(passes(CheckKind::Command { argv: vec!["true".into()] }));
        assert!(!passes(CheckKind::Command { argv: vec!["false".into()] }));
        assert!(!passes(CheckKind::Command { argv: vec![] }));
        // The environment is PATH and LANG only.
        assert!(passes(CheckKind::Command {
            argv: vec!["sh".into(), "-c".into(), "test -z \"$HOME\"".into()]
        }));
        assert!(passes(CheckKind::SystemdUnit { unit: "up.service".into() }));
        assert!(!passes(CheckKind::SystemdUnit { unit: "down.service".into() }));
    }
}
