//! s3cmd, the real S3 client, pointed at the embedded origin with the test credentials.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The access key of the test user every embedded-origin config declares.
pub const ACCESS: &str = "EDGETESTADMIN";
/// Its secret key.
pub const SECRET: &str = "edge-test-secret-key";

/// The `[[origin.user]]` block with the test credentials.
pub fn origin_user() -> String {
    format!(
        "[[origin.user]]\nid = \"admin\"\naccess_key = \"{ACCESS}\"\nsecret_key = \"{SECRET}\"\n"
    )
}

/// s3cmd with its own config file, path-style against `origin`.
pub struct S3cmd {
    config: PathBuf,
}

impl S3cmd {
    pub fn new(dir: &Path, origin: SocketAddr) -> S3cmd {
        let config = dir.join("s3cfg");
        std::fs::write(
            &config,
            format!(
                "[default]\naccess_key = {ACCESS}\nsecret_key = {SECRET}\nhost_base = {origin}\nhost_bucket = {origin}\nuse_https = False\nsignature_v2 = False\n"
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
            .expect("s3cmd is installed");
        assert!(
            out.status.success(),
            "s3cmd {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Sets the CORS rules of `bucket` from a `<CORSConfiguration>` document.
    pub fn set_cors(&self, dir: &Path, bucket: &str, xml: &str) {
        let file = dir.join(format!("cors-{bucket}.xml"));
        std::fs::write(&file, xml).unwrap();
        self.run(&["setcors", file.to_str().unwrap(), &format!("s3://{bucket}")]);
    }
}
