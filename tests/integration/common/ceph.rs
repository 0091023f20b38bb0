//! One real Ceph cluster per test run (`scripts/ceph-dev.sh`: a monitor, a memstore OSD, a
//! manager and a RADOS Gateway on loopback), started by the first test that asks for it and
//! stopped by the script's watcher when the test process exits. Every test works in buckets of
//! its own; a test that stops its gateway starts a [`Gateway`] of its own for that.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The shared cluster.
#[derive(Debug)]
pub struct Cluster {
    /// Where the script keeps the cluster's config, keys, logs and pid files.
    pub dir: PathBuf,
    /// The main gateway (`http://127.0.0.1:PORT`).
    pub endpoint: String,
    /// The S3 user `edge`.
    pub access_key: String,
    pub secret_key: String,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();

/// The cluster, started on first use (blocks the caller while it starts, ~10 s).
pub fn cluster() -> &'static Cluster {
    match CLUSTER.get_or_init(start_cluster) {
        Ok(cluster) => cluster,
        Err(e) => panic!("{e}"),
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/ceph-dev.sh")
}

/// `key=value` lines of the script's output.
fn parse_env(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn start_cluster() -> Result<Cluster, String> {
    let dir = tempfile::Builder::new()
        .prefix("edge-ceph-")
        .tempdir()
        .map_err(|e| format!("temporary dir for the Ceph cluster: {e}"))?
        .keep();
    let started = Instant::now();
    // The watcher stops the cluster and removes `dir` once this process has exited.
    let out = Command::new(script())
        .arg("start")
        .arg(&dir)
        .args(["--watch", &std::process::id().to_string(), "--clean"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run scripts/ceph-dev.sh: {e}"))?;
    let started_in = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!(
            "the Ceph test cluster did not start (scripts/ceph-dev.sh start {}):\n{stderr}",
            dir.display()
        ));
    }
    let env = parse_env(&String::from_utf8_lossy(&out.stdout));
    let field = |name: &str| {
        env.get(name)
            .cloned()
            .ok_or_else(|| format!("scripts/ceph-dev.sh printed no `{name}=`:\n{stderr}"))
    };
    let cluster = Cluster {
        endpoint: field("endpoint")?,
        access_key: field("access_key")?,
        secret_key: field("secret_key")?,
        dir,
    };
    eprintln!(
        "ceph: cluster under {} up in {:.1}s",
        cluster.dir.display(),
        started_in.as_secs_f64()
    );
    Ok(cluster)
}

static BUCKETS: AtomicUsize = AtomicUsize::new(0);

impl Cluster {
    /// `host:port` of the main gateway.
    pub fn host(&self) -> &str {
        self.endpoint.trim_start_matches("http://")
    }

    /// An s3cmd configured for the user `edge` on the main gateway, its config in `dir`.
    pub fn s3cmd(&self, dir: &Path) -> S3cmd {
        S3cmd::new(dir, self.host(), &self.access_key, &self.secret_key)
    }

    /// A bucket name no other test uses (`<prefix>-<n>`).
    pub fn name(&self, prefix: &str) -> String {
        format!("{prefix}-{}", BUCKETS.fetch_add(1, Ordering::Relaxed))
    }

    /// A new bucket no other test uses, created by `s3`.
    pub fn bucket(&self, s3: &S3cmd, prefix: &str) -> String {
        let name = self.name(prefix);
        s3.run(&["mb", &format!("s3://{name}")]);
        name
    }

    /// The `[origin]` section of an edge in front of `endpoint` with the user `edge`.
    pub fn origin_section(&self, endpoint: &str) -> String {
        format!(
            "[origin]\nkind = \"s3\"\nendpoint = \"{endpoint}\"\naccess_key = \"{}\"\n\
             secret_key = \"{}\"\ntimeout = \"10s\"\nconnect_timeout = \"1s\"\n",
            self.access_key, self.secret_key
        )
    }

    /// A SigV4 presigned GET of `bucket/key` on the main gateway: the query string.
    pub fn presign(&self, bucket: &str, key: &str, expires: Duration) -> String {
        use aws_sigv4::http_request::{
            SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
        };
        let url = format!("{}/{bucket}/{key}", self.endpoint);
        let identity = aws_credential_types::Credentials::new(
            &self.access_key,
            &self.secret_key,
            None,
            None,
            "test",
        )
        .into();
        let mut settings = SigningSettings::default();
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(expires);
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("s3")
            .time(std::time::SystemTime::now())
            .settings(settings)
            .build()
            .unwrap()
            .into();
        let signable = SignableRequest::new(
            "GET",
            &url,
            std::iter::empty(),
            SignableBody::UnsignedPayload,
        )
        .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        let mut request = http::Request::get(&url).body(()).unwrap();
        instructions.apply_to_request_http1x(&mut request);
        request.uri().query().unwrap().to_owned()
    }
}

/// s3cmd, path-style against a gateway.
pub struct S3cmd {
    config: PathBuf,
}

impl S3cmd {
    pub fn new(dir: &Path, host: &str, access: &str, secret: &str) -> S3cmd {
        let config = dir.join("s3cfg-ceph");
        std::fs::write(
            &config,
            format!(
                "[default]\naccess_key = {access}\nsecret_key = {secret}\nhost_base = {host}\n\
                 host_bucket = {host}\nuse_https = False\nsignature_v2 = False\n"
            ),
        )
        .unwrap();
        S3cmd { config }
    }

    /// Runs s3cmd with `args`; panics with its stderr when it fails.
    pub fn run(&self, args: &[&str]) -> String {
        let out = Command::new("s3cmd")
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .output()
            .expect("s3cmd is installed (scripts/test.sh installs it)");
        assert!(
            out.status.success(),
            "s3cmd {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Uploads `body` (written to a file in `dir`) to `s3://bucket/key` with extra s3cmd options.
    pub fn put(&self, dir: &Path, body: &[u8], target: &str, options: &[&str]) {
        static FILES: AtomicUsize = AtomicUsize::new(0);
        let file = dir.join(format!("upload-{}", FILES.fetch_add(1, Ordering::Relaxed)));
        std::fs::write(&file, body).unwrap();
        let mut args = vec!["put"];
        args.extend_from_slice(options);
        args.push(file.to_str().unwrap());
        args.push(target);
        self.run(&args);
    }
}

/// A gateway of one test's own in front of the shared cluster (stopped on drop).
pub struct Gateway {
    name: String,
    /// `http://127.0.0.1:PORT`, the same across restarts.
    pub endpoint: String,
}

fn run_script(args: &[&str]) -> String {
    let dir = &cluster().dir;
    let out = Command::new(script())
        .arg(args[0])
        .arg(dir)
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/ceph-dev.sh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Gateway {
    /// Starts gateway `name` (a name no other test uses) and waits until it answers.
    pub fn start(name: &str) -> Gateway {
        let env = parse_env(&run_script(&["gateway", name]));
        Gateway {
            name: name.to_owned(),
            endpoint: env["endpoint"].clone(),
        }
    }

    /// Stops it (SIGTERM, then waits for the process to exit).
    pub fn stop(&self) {
        run_script(&["gateway-stop", &self.name]);
    }

    /// Starts it again on the same port.
    pub fn restart(&self) {
        run_script(&["gateway", &self.name]);
    }

    /// The GET and HEAD requests it served so far (its `rgw.get` performance counter).
    pub fn gets(&self) -> u64 {
        let socket = cluster()
            .dir
            .join(format!("run/client.rgw.{}.asok", self.name));
        let out = Command::new("ceph")
            .arg("--admin-daemon")
            .arg(&socket)
            .args(["perf", "dump", "rgw"])
            .output()
            .unwrap();
        assert!(out.status.success(), "perf dump of gateway {}", self.name);
        let dump: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        dump["rgw"]["get"].as_u64().unwrap()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .arg("gateway-stop")
            .arg(&cluster().dir)
            .arg(&self.name)
            .stdin(Stdio::null())
            .output();
    }
}
