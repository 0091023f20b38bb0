//! Runs a store on 127.0.0.1:9000 (or $ORIGIN_ADDR) with users alice/bob; data in $ORIGIN_DATA.

use origin::{Store, StoreConfig, UserConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let data_dir = std::env::var("ORIGIN_DATA").unwrap_or_else(|_| "data/origin".into());
    let addr = std::env::var("ORIGIN_ADDR").unwrap_or_else(|_| "127.0.0.1:9000".into());
    let user = |id: &str, ak: &str, sk: &str| UserConfig {
        id: id.into(),
        display_name: id.into(),
        email: None,
        access_key: ak.into(),
        secret_key: sk.into(),
    };
    let store = Store::open(StoreConfig {
        data_dir: data_dir.into(),
        domain: std::env::var("ORIGIN_DOMAIN").ok(),
        region: "us-east-1".into(),
        users: vec![
            user("alice", "AKIAALICE", "alice-secret-key"),
            user("bob", "AKIABOB", "bob-secret-key"),
        ],
        lifecycle: origin::LifecycleConfig::default(),
        log_flush: origin::DEFAULT_LOG_FLUSH,
    })?;
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("serving on {}", listener.local_addr()?);
    store
        .serve(listener, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
