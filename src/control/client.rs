//! The CLI's client of the control-plane API (`edge space ...`, `edge key ...`): one JSON request, its answer
//! as JSON, a refusal as an error carrying the API's message.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::Value;

use crate::http_client::{ClientBuilder, HttpsClient};

/// How long the CLI waits for the admin API.
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Why a CLI request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("bad admin URL: {0}")]
    Url(String),
    #[error("cannot reach the admin API: {0}")]
    Transport(String),
    #[error("the PoP refused ({status}): {message}")]
    Refused { status: u16, message: String },
}

/// Sends `method path` with `body` to the admin API at `admin`; the reply's JSON (`null`
/// for an empty one).
pub async fn call(
    admin: &str,
    token: &str,
    method: http::Method,
    path: &str,
    body: Option<&Value>,
    ca_roots: Option<&std::path::Path>,
) -> Result<Value, ClientError> {
    let url = format!("{}{path}", admin.trim_end_matches('/'));
    let uri: http::Uri = url
        .parse()
        .map_err(|e| ClientError::Url(format!("{url}: {e}")))?;
    let body = match body {
        Some(value) => Bytes::from(value.to_string()),
        None => Bytes::new(),
    };
    let request = http::Request::builder()
        .method(method)
        .uri(uri)
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .map_err(|e| ClientError::Url(e.to_string()))?;
    let client: HttpsClient<Full<Bytes>> =
        ClientBuilder::new(crate::tls::client_config_with_roots(ca_roots), TIMEOUT).build();
    let response = tokio::time::timeout(TIMEOUT, client.request(request))
        .await
        .map_err(|_| ClientError::Transport("timed out".to_owned()))?
        .map_err(|e| ClientError::Transport(e.to_string()))?;
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| ClientError::Transport(e.to_string()))?
        .to_bytes();
    let value: Value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::Transport(format!("reply is not JSON: {e}")))?
    };
    if !status.is_success() {
        let message = value
            .get("error")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
        return Err(ClientError::Refused {
            status: status.as_u16(),
            message,
        });
    }
    Ok(value)
}

/// Spaces as a table for people: one line each, aligned columns.
pub fn spaces_table(spaces: &[Value]) -> String {
    let columns = [
        "name",
        "region",
        "ttl",
        "bucket",
        "custom_domain",
        "certificate",
        "source",
    ];
    table(&columns, spaces, cell)
}

/// Certificates as a table for people.
pub fn certs_table(certs: &[Value]) -> String {
    table(&["id", "names", "not_after", "source"], certs, cell)
}

/// Access keys as a table for people; grants as `bucket:access` pairs.
pub fn keys_table(keys: &[Value]) -> String {
    let columns = ["access_key", "name", "grants", "created_at"];
    table(&columns, keys, |key, column| {
        match (column, key.get(column)) {
            ("grants", Some(Value::Array(grants))) => grants
                .iter()
                .map(|g| {
                    format!(
                        "{}:{}",
                        g["bucket"].as_str().unwrap_or("?"),
                        g["access"].as_str().unwrap_or("?")
                    )
                })
                .collect::<Vec<_>>()
                .join(","),
            _ => cell(key, column),
        }
    })
}

/// A JSON field as a table cell (`-` when absent).
fn cell(item: &Value, column: &str) -> String {
    match item.get(column) {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join(","),
        Some(other) => other.to_string(),
    }
}

/// `items` as aligned columns under upper-case headers, one line each.
fn table(columns: &[&str], items: &[Value], cell: impl Fn(&Value, &str) -> String) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|s| columns.iter().map(|c| cell(s, c)).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([c.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut out = line(columns.iter().map(|c| c.to_uppercase()).collect());
    for row in rows {
        out.push('\n');
        out.push_str(&line(row));
    }
    out.push('\n');
    out
}
