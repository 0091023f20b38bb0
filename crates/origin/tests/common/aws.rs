//! The AWS CLI (`aws s3api`, a client we did not write) configured for one user of a server:
//! path-style addressing, region us-east-1, no shared config or credentials of the machine.

use std::path::PathBuf;

use super::{Server, User};

pub struct Aws {
    config: PathBuf,
    endpoint: String,
    user: User,
    _dir: tempfile::TempDir,
}

/// What one run printed.
#[derive(Debug)]
pub struct Output {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Aws {
    pub fn new(server: &Server, user: User) -> Aws {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::write(
            &config,
            "[default]\nregion = us-east-1\noutput = json\ns3 =\n    addressing_style = path\n",
        )
        .unwrap();
        Aws {
            config,
            endpoint: server.url(""),
            user,
            _dir: dir,
        }
    }

    /// A scratch directory for files the commands read or write.
    pub fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    pub async fn run(&self, args: &[&str]) -> Output {
        let out = tokio::process::Command::new("aws")
            .arg("--endpoint-url")
            .arg(&self.endpoint)
            .args(args)
            .env("AWS_CONFIG_FILE", &self.config)
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_ACCESS_KEY_ID", self.user.access_key)
            .env("AWS_SECRET_ACCESS_KEY", self.user.secret_key)
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .env("AWS_PAGER", "")
            .output()
            .await
            .expect("the aws cli is installed (apt-get install awscli)");
        Output {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs an `s3api` command that must succeed; its JSON output (Null when it prints none).
    pub async fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.run(args).await;
        assert!(out.ok, "aws {args:?} failed:\n{}{}", out.stdout, out.stderr);
        if out.stdout.trim().is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&out.stdout).unwrap()
        }
    }

    /// Runs a command that must fail; its error text.
    pub async fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(!out.ok, "aws {args:?} should fail:\n{}", out.stdout);
        out.stderr
    }

    /// Writes `bytes` to a file in the scratch directory; returns its path.
    pub fn file(&self, name: &str, bytes: &[u8]) -> String {
        let path = self.dir().join(name);
        std::fs::write(&path, bytes).unwrap();
        path.to_string_lossy().into_owned()
    }
}
