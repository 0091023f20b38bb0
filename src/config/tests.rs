//! Tests of config parsing and validation: defaults, every key's errors.

use std::time::Duration;

use super::*;

const MINIMAL: &str = r#"
[listen]
http = "127.0.0.1:0"
[[origin.user]]
id = "admin"
access_key = "AKIDADMIN"
secret_key = "secret-secret"
[[space]]
name = "assets"
"#;

fn err(text: &str) -> String {
    Config::parse(text)
        .expect_err("config should be rejected")
        .to_string()
}

#[test]
fn default_config_file_is_valid() {
    let text = include_str!("../../edge.toml");
    let config = Config::parse(text).expect("edge.toml is valid");
    assert_eq!(config.spaces[0].name, "assets");
    assert!(config.tls.self_signed);
}

#[test]
fn minimal_config_gets_defaults() {
    let config = Config::parse(MINIMAL).unwrap();
    assert_eq!(config.cache.default_ttl, Duration::from_secs(3600));
    assert_eq!(config.cdn.domain, "cdn.localhost");
    assert_eq!(config.spaces[0].bucket, "assets");
    assert_eq!(config.spaces[0].query, QueryPolicy::Full);
}

#[test]
fn unknown_key_is_named() {
    let e = err(&format!("{MINIMAL}\n[cache]\nmemroy = \"1MiB\"\n"));
    assert!(e.contains("cache") && e.contains("memroy"), "{e}");
}

#[test]
fn wrong_type_names_the_key() {
    let e = err(&format!("{MINIMAL}\n[cache]\nmemory = 5\n"));
    assert!(e.starts_with("cache.memory:"), "{e}");
}

#[test]
fn bad_units_name_the_key() {
    let e = err(&format!("{MINIMAL}\n[cache]\nmemory = \"lots\"\n"));
    assert!(e.starts_with("cache.memory:"), "{e}");
    let e = err(&format!("{MINIMAL}\n[cache]\ndefault_ttl = \"soon\"\n"));
    assert!(e.starts_with("cache.default_ttl:"), "{e}");
}

#[test]
fn secret_from_env_and_missing_env() {
    let text = MINIMAL.replace(
        "secret_key = \"secret-secret\"",
        "secret_key_env = \"EDGE_TEST_UNSET_VAR_XYZ\"",
    );
    let e = err(&text);
    assert!(
        e.contains("origin.user[0].secret_key_env") && e.contains("EDGE_TEST_UNSET_VAR_XYZ"),
        "{e}"
    );
}

#[test]
fn secrets_are_masked_when_printed() {
    let config = Config::parse(MINIMAL).unwrap();
    let printed = config.to_toml();
    assert!(!printed.contains("secret-secret"), "{printed}");
    assert!(printed.contains("***"));
    assert!(!format!("{config:?}").contains("secret-secret"));
}

#[test]
fn space_names_are_dns_labels_and_unique() {
    let e = err(&MINIMAL.replace("name = \"assets\"", "name = \"My.Assets\""));
    assert!(e.starts_with("space[0].name:"), "{e}");
    let e = err(&format!("{MINIMAL}\n[[space]]\nname = \"assets\"\n"));
    assert!(e.starts_with("space[1].name:"), "{e}");
}

#[test]
fn acme_space_needs_acme_section() {
    let e = err(&format!(
        "{MINIMAL}\n[[space]]\nname = \"bbb\"\ncustom_domain = \"img.example.com\"\ncertificate = \"acme\"\n"
    ));
    assert!(e.starts_with("space[1].certificate:"), "{e}");
}

#[test]
fn duplicate_listen_address_is_refused() {
    let e = err(&MINIMAL.replace(
        "http = \"127.0.0.1:0\"",
        "http = \"127.0.0.1:8080\"\nadmin = \"127.0.0.1:8080\"",
    ));
    assert!(
        e.contains("listen.admin") && e.contains("already used"),
        "{e}"
    );
}

#[test]
fn query_policies() {
    let c = Config::parse(&format!(
        "{MINIMAL}\n[[space]]\nname = \"bbb\"\nquery = {{ allow = [\"w\", \"v\"] }}\n"
    ))
    .unwrap();
    assert_eq!(
        c.spaces[1].query,
        QueryPolicy::Allow(vec!["v".into(), "w".into()])
    );
    let e = err(&format!(
        "{MINIMAL}\n[[space]]\nname = \"bbb\"\nquery = \"some\"\n"
    ));
    assert!(e.starts_with("space[1].query:"), "{e}");
}

#[test]
fn targeted_fields() {
    let c = Config::parse(&format!(
        "{MINIMAL}\n[[space]]\nname = \"bbb\"\ntargeted = [\"Edge-Control\", \"edge-control\", \"Acme-CDN\"]\n"
    ))
    .unwrap();
    let names: Vec<&str> = c.spaces[1].targeted.iter().map(|n| n.as_str()).collect();
    assert_eq!(names, ["edge-control", "acme-cdn"]);
    assert!(c.spaces[0].targeted.is_empty());
    assert!(c.to_toml().contains("\"edge-control\",\n    \"acme-cdn\","));
    for (value, reason) in [
        ("[\"Cache-Control\"]", "always applies"),
        ("[\"CDN-Cache-Control\"]", "always applies"),
        ("[\"bad name\"]", "not a header field name"),
        (
            "[\"a\", \"b\", \"c\", \"d\", \"e\", \"f\", \"g\", \"h\", \"i\"]",
            "at most 8",
        ),
    ] {
        let e = err(&format!("{MINIMAL}targeted = {value}\n"));
        assert!(
            e.starts_with("space[0].targeted:") && e.contains(reason),
            "{e}"
        );
    }
}

#[test]
fn origin_kind_keys_are_checked() {
    let e = err("[listen]\nhttp = \"127.0.0.1:0\"\n[origin]\nkind = \"s3\"\n");
    assert!(e.starts_with("origin.endpoint:"), "{e}");
    let e = err("[listen]\nhttp = \"127.0.0.1:0\"\n[origin]\nkind = \"ftp\"\n");
    assert!(e.starts_with("origin.kind:"), "{e}");
    let ok = Config::parse("[listen]\nhttp = \"127.0.0.1:0\"\n[origin]\nkind = \"http\"\nurl = \"http://127.0.0.1:9999\"\n").unwrap();
    assert!(matches!(ok.origin.kind, OriginKind::Http { .. }));
}

#[test]
fn toml_syntax_error_names_a_line() {
    let e = err("[listen\nhttp = 1");
    assert!(e.starts_with("line 1:"), "{e}");
}

#[test]
fn acme_defaults_and_timing_keys() {
    let c = Config::parse(&format!(
        "{MINIMAL}\n[acme]\ndirectory = \"https://acme.example/dir\"\n"
    ))
    .unwrap();
    let acme = c.acme.unwrap();
    assert_eq!(acme.challenge, AcmeChallenge::Http01);
    assert!(matches!(acme.store, AcmeStore::Dir(ref d) if d == Path::new("data/acme")));
    assert_eq!(acme.poll_interval, Duration::from_secs(10));
    assert_eq!(acme.retry_min, Duration::from_secs(10));
    assert_eq!(acme.retry_max, Duration::from_secs(6 * 3600));
    assert_eq!(acme.lease, Duration::from_secs(300));
    assert_eq!(c.tls.watch_interval, Duration::from_secs(10));

    let c = Config::parse(&format!(
        "{MINIMAL}\n[acme]\nstore = \"origin\"\nchallenge = \"tls-alpn-01\"\npoll_interval = \"2s\"\nretry_min = \"1s\"\nretry_max = \"1m\"\nlease = \"30s\"\n"
    ))
    .unwrap();
    let acme = c.acme.unwrap();
    assert!(matches!(acme.store, AcmeStore::Origin));
    assert_eq!(acme.challenge, AcmeChallenge::TlsAlpn01);
    assert_eq!(acme.poll_interval, Duration::from_secs(2));
    assert_eq!(acme.lease, Duration::from_secs(30));
}

#[test]
fn acme_bad_values_name_the_key() {
    let with = |acme: &str| err(&format!("{MINIMAL}\n[acme]\n{acme}\n"));
    assert!(with("retry_min = \"1m\"\nretry_max = \"1s\"").starts_with("acme.retry_max:"));
    assert!(with("lease = \"1s\"").starts_with("acme.lease:"));
    assert!(with("poll_interval = \"0s\"").starts_with("acme.poll_interval:"));
    assert!(with("store = \"redis\"").starts_with("acme.store:"));
    assert!(with("challenge = \"dns-01\"").starts_with("acme.challenge:"));
    let e = err(
        "[listen]\nhttp = \"127.0.0.1:0\"\n[origin]\nkind = \"http\"\nurl = \"http://127.0.0.1:9\"\n[acme]\nstore = \"origin\"\n",
    );
    assert!(e.starts_with("acme.store:") && e.contains("s3"), "{e}");
    let e = err(
        "[listen]\nhttp = \"127.0.0.1:0\"\n[origin]\nkind = \"s3\"\nendpoint = \"http://127.0.0.1:9\"\n[acme]\nstore = \"origin\"\n",
    );
    assert!(e.starts_with("acme.store:"), "{e}");
}

#[test]
fn lifecycle_timing_keys() {
    let with = |extra: &str| {
        format!(
            "[listen]\nhttp = \"127.0.0.1:0\"\n[origin]\n{extra}\n[[origin.user]]\nid = \"admin\"\n\
             access_key = \"AKIDADMIN\"\nsecret_key = \"secret-secret\"\n[[space]]\nname = \"assets\"\n"
        )
    };
    let embedded = |c: Config| match c.origin.kind {
        OriginKind::Embedded(e) => e,
        other => panic!("{other:?}"),
    };
    let e = embedded(Config::parse(&with("")).unwrap());
    assert_eq!(e.lifecycle_interval, Duration::from_secs(3600));
    assert_eq!(e.lifecycle_day, Duration::from_secs(86_400));
    let e = embedded(
        Config::parse(&with("lifecycle_interval = \"1s\"\nlifecycle_day = \"2s\"")).unwrap(),
    );
    assert_eq!(e.lifecycle_interval, Duration::from_secs(1));
    assert_eq!(e.lifecycle_day, Duration::from_secs(2));
    let e = err(&with("lifecycle_day = \"0s\""));
    assert!(e.contains("origin.lifecycle_day"), "{e}");
    let e = err(&with("lifecycle_interval = \"soon\""));
    assert!(e.contains("origin.lifecycle_interval"), "{e}");
    let e = err(
        "[listen]\nhttp = \"127.0.0.1:0\"\n[origin]\nkind = \"http\"\nurl = \"http://127.0.0.1:1\"\n\
         lifecycle_day = \"2s\"\n[[space]]\nname = \"assets\"\n",
    );
    assert!(e.contains("origin.lifecycle_day"), "{e}");
}

#[test]
fn origin_log_flush_and_tls() {
    let config = Config::parse(MINIMAL).unwrap();
    let OriginKind::Embedded(e) = &config.origin.kind else {
        panic!("embedded by default")
    };
    assert_eq!(e.log_flush, Duration::from_secs(300));
    assert!(!e.tls);
    let text = MINIMAL.replace(
        "[[origin.user]]",
        "[origin]\nlog_flush = \"2s\"\ntls = true\n[[origin.user]]",
    );
    let OriginKind::Embedded(e) = Config::parse(&text).unwrap().origin.kind else {
        panic!("embedded")
    };
    assert_eq!((e.log_flush, e.tls), (Duration::from_secs(2), true));
    for (bad, key) in [
        ("log_flush = \"0s\"", "origin.log_flush"),
        ("log_flush = \"soon\"", "origin.log_flush"),
        ("tls = \"yes\"", "tls"),
    ] {
        let e = err(&MINIMAL.replace(
            "[[origin.user]]",
            &format!("[origin]\n{bad}\n[[origin.user]]"),
        ));
        assert!(e.contains(key), "{bad}: {e}");
    }
    let e = err(
        "[listen]\nhttp = \"127.0.0.1:0\"\n[origin]\nkind = \"http\"\nurl = \"http://127.0.0.1:9\"\nlog_flush = \"1m\"\n",
    );
    assert!(e.starts_with("origin.log_flush:"), "{e}");
}

#[test]
fn compression_keys() {
    let config = Config::parse(MINIMAL).unwrap();
    assert!(config.spaces[0].compress);
    assert_eq!(config.cache.compress_min, 1024);
    let text = MINIMAL.replace("name = \"assets\"", "name = \"assets\"\ncompress = false")
        + "[cache]\ncompress_min = \"64KiB\"\n";
    let config = Config::parse(&text).unwrap();
    assert!(!config.spaces[0].compress);
    assert_eq!(config.cache.compress_min, 64 << 10);
    let e = err(&(MINIMAL.to_owned() + "[cache]\ncompress_min = \"lots\"\n"));
    assert!(e.contains("cache.compress_min"), "{e}");
    let e = err(&MINIMAL.replace("name = \"assets\"", "name = \"assets\"\ncompress = \"yes\""));
    assert!(e.contains("compress"), "{e}");
}

#[test]
fn an_admin_token_is_its_own_secret() {
    let text = MINIMAL.to_owned()
        + "[purge]\npeer_token = \"shared-secret-0123456\"\n\
           [[admin.tokens]]\nname = \"ops\"\ntoken = \"shared-secret-0123456\"\n";
    let e = err(&text);
    assert!(e.contains("admin.tokens[0].token"), "{e}");
    let short = MINIMAL.to_owned() + "[[admin.tokens]]\nname = \"ops\"\ntoken = \"short\"\n";
    assert!(err(&short).contains("at least 16"));
    let scope = MINIMAL.to_owned()
        + "[[admin.tokens]]\nname = \"ops\"\ntoken = \"long-enough-token-01\"\nscopes = [\"all\"]\n";
    assert!(err(&scope).contains("admin.tokens[0].scopes"));
}
