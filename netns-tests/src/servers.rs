//! Servers in the internet namespace: nginx (HTTP), iperf3, dnsmasq (DNS), each with its
//! files in the topology's work directory, and the client addresses their logs show.

use crate::error::{Error, Result};
use crate::netns::Netns;
use crate::plan::{self, DNS_NAME, DNS_PORT, HTTP_PORT, IPERF_PORT, SERVER};
use crate::topology::Topology;
use crate::wait::{is_listening, wait_until, Proto};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// Sizes of the files nginx serves as `/bytes/N` (N in bytes).
pub const NGINX_FILE_SIZES: &[usize] = &[1024, 65_536, 1_048_576, 4_194_304];
/// Body of `GET /`.
pub const NGINX_INDEX_BODY: &str = "fwd netns test server\n";
/// How long a server may take to listen.
pub const START_TIMEOUT: Duration = Duration::from_secs(5);

/// Servers started in a topology.
#[derive(Debug, Default)]
pub(crate) struct Servers(Mutex<State>);

#[derive(Debug, Default)]
struct State {
    nginx: Option<PathBuf>,
    dns: Option<PathBuf>,
    iperf: Vec<u16>,
}

impl Servers {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Topology {
    /// Starts nginx on 203.0.113.10:80 (idempotent): `GET /` answers
    /// [`NGINX_INDEX_BODY`], `GET /bytes/N` a file of N zero bytes for N in
    /// [`NGINX_FILE_SIZES`]. Its access log records each request's client address.
    pub fn start_nginx(&self) -> Result<()> {
        let mut st = self.servers.lock();
        if st.nginx.is_some() {
            return Ok(());
        }
        let dir = self.workdir.subdir("nginx")?;
        let www = dir.join("www");
        std::fs::create_dir_all(www.join("bytes"))?;
        for &n in NGINX_FILE_SIZES {
            std::fs::write(www.join("bytes").join(n.to_string()), vec![0u8; n])?;
        }
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, nginx_conf(&dir))?;
        let d = dir.display().to_string();
        let c = conf.display().to_string();
        let e = dir.join("error.log").display().to_string();
        let args = ["nginx", "-p", &d, "-c", &c, "-e", &e];
        start(self.internet(), &args, &dir, Proto::Tcp, HTTP_PORT)?;
        st.nginx = Some(dir.join("access.log"));
        Ok(())
    }

    /// Client address of every request nginx has logged so far, in order (empty before the
    /// first request). nginx logs a request just after answering it: poll with
    /// [`crate::wait_until`] rather than reading once right after a client returns.
    pub fn nginx_clients(&self) -> Result<Vec<Ipv4Addr>> {
        let log = self.servers.lock().nginx.clone();
        let log = log.ok_or_else(|| Error::new("nginx not started"))?;
        Ok(parse_nginx_log(&read_or_empty(&log)?))
    }

    /// Starts `iperf3 -s` on 203.0.113.10:5201 (idempotent); returns the port.
    pub fn start_iperf3(&self) -> Result<u16> {
        self.start_iperf3_on(IPERF_PORT)
    }

    /// Starts another iperf3 server on `port` (idempotent per port); returns the port.
    pub fn start_iperf3_on(&self, port: u16) -> Result<u16> {
        let mut st = self.servers.lock();
        if st.iperf.contains(&port) {
            return Ok(port);
        }
        let dir = self.workdir.subdir(&format!("iperf3-{port}"))?;
        let (addr, p) = (SERVER.to_string(), port.to_string());
        let args = ["iperf3", "-s", "-B", &addr, "-p", &p];
        start(self.internet(), &args, &dir, Proto::Tcp, port)?;
        st.iperf.push(port);
        Ok(port)
    }

    /// Starts dnsmasq on 203.0.113.10:53 (idempotent), answering `example.test` and its
    /// subdomains with 203.0.113.10 and [`plan::BIG_TXT_NAME`]'s TXT record with about 4 KB
    /// over UDP (EDNS), and logging every query with its source.
    pub fn start_dns(&self) -> Result<()> {
        let mut st = self.servers.lock();
        if st.dns.is_some() {
            return Ok(());
        }
        let dir = self.workdir.subdir("dnsmasq")?;
        let log = dir.join("queries.log");
        let flags = [
            "--no-daemon".to_string(),
            "--conf-file=/dev/null".to_string(),
            "--no-resolv".to_string(),
            "--no-hosts".to_string(),
            "--user=root".to_string(),
            format!("--port={DNS_PORT}"),
            format!("--listen-address={SERVER}"),
            "--bind-interfaces".to_string(),
            format!("--address=/{DNS_NAME}/{SERVER}"),
            big_txt_record(),
            "--edns-packet-max=4096".to_string(),
            "--log-queries".to_string(),
            format!("--log-facility={}", log.display()),
            format!("--pid-file={}", dir.join("dnsmasq.pid").display()),
        ];
        let mut args = vec!["dnsmasq"];
        args.extend(flags.iter().map(String::as_str));
        start(self.internet(), &args, &dir, Proto::Udp, DNS_PORT)?;
        st.dns = Some(log);
        Ok(())
    }

    /// Source address of every query dnsmasq has logged so far, in order (dnsmasq logs
    /// asynchronously: poll, as for [`Topology::nginx_clients`]).
    pub fn dns_clients(&self) -> Result<Vec<Ipv4Addr>> {
        let log = self.servers.lock().dns.clone();
        let log = log.ok_or_else(|| Error::new("dnsmasq not started"))?;
        Ok(parse_dnsmasq_log(&read_or_empty(&log)?))
    }
}

/// dnsmasq's option for [`plan::BIG_TXT_NAME`]: strings of letters, each its own.
fn big_txt_record() -> String {
    let strings: Vec<String> = (0..plan::BIG_TXT_STRINGS)
        .map(|i| {
            let letter = char::from(b'a' + (i % 26) as u8);
            letter.to_string().repeat(plan::BIG_TXT_STRING_LEN)
        })
        .collect();
    format!("--txt-record={},{}", plan::BIG_TXT_NAME, strings.join(","))
}

/// Spawns `args` in `ns` (output to `dir/output.log`) and waits until it listens on
/// SERVER:`port`; on failure or timeout the process is killed and its output reported.
fn start(ns: &Netns, args: &[&str], dir: &Path, proto: Proto, port: u16) -> Result<()> {
    crate::privilege::which(args[0])?;
    let out = dir.join("output.log");
    let pid = ns.spawn(args, &out)?;
    let res = wait_until(
        &format!("{} to listen on {SERVER}:{port}", args[0]),
        START_TIMEOUT,
        || {
            if !ns.is_running(pid) {
                return Err(Error::new(format!("{} exited", args[0])));
            }
            is_listening(pid, proto, SERVER, port)
        },
    );
    res.map_err(|e| {
        ns.kill(pid);
        let printed = std::fs::read_to_string(&out).unwrap_or_default();
        Error::new(format!(
            "starting `{}` in {}: {e}; its output: {}",
            args.join(" "),
            ns.name(),
            printed.trim()
        ))
    })
}

fn read_or_empty(path: &Path) -> Result<String> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(Error::new(format!("cannot read {}: {e}", path.display()))),
    }
}

/// nginx configuration for `dir`: everything (pid, logs, temp files, content) inside it.
fn nginx_conf(dir: &Path) -> String {
    let d = dir.display();
    let body = NGINX_INDEX_BODY.escape_default();
    format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    log_format fwt '$remote_addr $remote_port "$request" $status $body_bytes_sent';
    access_log {d}/access.log fwt;
    client_body_temp_path {d}/tmp-body;
    proxy_temp_path {d}/tmp-proxy;
    fastcgi_temp_path {d}/tmp-fastcgi;
    uwsgi_temp_path {d}/tmp-uwsgi;
    scgi_temp_path {d}/tmp-scgi;
    default_type application/octet-stream;
    sendfile on;
    keepalive_timeout 5;
    server {{
        listen {SERVER}:{HTTP_PORT};
        root {d}/www;
        location = / {{ default_type text/plain; return 200 "{body}"; }}
        location /bytes/ {{ }}
    }}
}}
"#
    )
}

/// Client addresses of an nginx access log in this crate's format (first field).
pub fn parse_nginx_log(log: &str) -> Vec<Ipv4Addr> {
    log.lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

/// Query sources of a dnsmasq `--log-queries` log (`... query[A] NAME from ADDR`).
pub fn parse_dnsmasq_log(log: &str) -> Vec<Ipv4Addr> {
    log.lines()
        .filter(|l| l.contains(" query["))
        .filter_map(|l| l.rsplit_once(" from ")?.1.trim().parse().ok())
        .collect()
}

/// URL of the `/bytes/N` download.
pub fn bytes_url(n: usize) -> String {
    plan::http_url(&format!("/bytes/{n}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn nginx_log_sources() {
        let log = "10.1.0.2 40000 \"GET / HTTP/1.1\" 200 22\n10.2.0.2 40001 \"GET /bytes/1024 HTTP/1.1\" 200 1024\n";
        assert_eq!(
            parse_nginx_log(log),
            [Ipv4Addr::new(10, 1, 0, 2), Ipv4Addr::new(10, 2, 0, 2)]
        );
    }

    #[test]
    fn dnsmasq_log_sources() {
        let log = "Jan  1 00:00:00 dnsmasq[7]: started, version 2.90\n\
                   Jan  1 00:00:01 dnsmasq[7]: query[A] example.test from 10.2.0.2\n\
                   Jan  1 00:00:01 dnsmasq[7]: config example.test is 203.0.113.10\n";
        assert_eq!(parse_dnsmasq_log(log), [Ipv4Addr::new(10, 2, 0, 2)]);
    }

    #[test]
    fn nginx_conf_keeps_everything_in_its_dir() {
        let conf = nginx_conf(Path::new("/tmp/x"));
        assert!(conf.contains("listen 203.0.113.10:80;"));
        assert!(conf.contains("pid /tmp/x/nginx.pid;"));
        assert!(conf.contains("$remote_addr"));
    }
}
