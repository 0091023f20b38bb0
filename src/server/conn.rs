//! What the edge knows about a client connection, and the route of the `Host` it repeats.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use super::Live;
use crate::config::Space;

/// What the connection knows about its requests: where it comes from, whether it is TLS and
/// which server name it asked for.
#[derive(Debug)]
pub struct ConnInfo {
    pub client_addr: SocketAddr,
    pub tls: bool,
    /// The TLS server name the client asked for.
    pub sni: Option<Arc<str>>,
    /// Its socket sends disk pieces from their files (`server::file_send`): plain HTTP/1.
    pub sends_files: bool,
    /// The route of the connection's first `Host`: clients repeat it on every request.
    first_route: OnceLock<RouteMemo>,
}

/// Where a request's `Host` leads, given the connection's TLS server name.
#[derive(Debug, Clone)]
pub enum Route {
    Space(Arc<Space>),
    /// No space has that name.
    UnknownHost,
    /// The TLS server name routes to another space than `Host` (answered with 421).
    Misdirected,
}

#[derive(Debug)]
struct RouteMemo {
    /// [`Live::generation`] of the routing table that gave `route`.
    generation: u64,
    host: Box<str>,
    route: Route,
}

impl ConnInfo {
    /// A plain-HTTP connection.
    pub fn plain(client_addr: SocketAddr) -> ConnInfo {
        ConnInfo {
            client_addr,
            tls: false,
            sni: None,
            sends_files: false,
            first_route: OnceLock::new(),
        }
    }

    /// The same, on a socket that sends disk pieces from their files (`FileSend`).
    pub fn sending_files(self) -> ConnInfo {
        ConnInfo {
            sends_files: true,
            ..self
        }
    }

    /// A TLS connection that asked for server name `sni`.
    pub fn tls(client_addr: SocketAddr, sni: Option<Arc<str>>) -> ConnInfo {
        ConnInfo {
            tls: true,
            sni,
            ..ConnInfo::plain(client_addr)
        }
    }

    /// Routes `host` with `live`'s table. The route of the connection's first host is
    /// remembered and reused while the table is the same one (a reload makes a new one).
    pub fn route(&self, live: &Live, host: &str) -> Route {
        if let Some(memo) = self.first_route.get()
            && memo.generation == live.generation
            && *memo.host == *host
        {
            return memo.route.clone();
        }
        let route = self.route_afresh(live, host);
        if self.first_route.get().is_none() {
            let _ = self.first_route.set(RouteMemo {
                generation: live.generation,
                host: host.into(),
                route: route.clone(),
            });
        }
        route
    }

    fn route_afresh(&self, live: &Live, host: &str) -> Route {
        let Some(space) = live.router.route(host) else {
            return Route::UnknownHost;
        };
        if let Some(sni) = &self.sni
            && live.router.route(sni).is_some_and(|s| s.name != space.name)
        {
            return Route::Misdirected;
        }
        Route::Space(space.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::routing::Router;

    fn live(spaces: &[(&str, &str)], generation: u64) -> Live {
        let mut text = String::from(
            "[listen]\nhttp = \"127.0.0.1:0\"\n[cdn]\ndomain = \"cdn.example.com\"\n\
             [[origin.user]]\nid = \"a\"\naccess_key = \"AKID1\"\nsecret_key = \"secret-secret\"\n",
        );
        for (name, domain) in spaces {
            text.push_str(&format!(
                "[[space]]\nname = \"{name}\"\nregion = \"nyc3\"\ncustom_domain = \"{domain}\"\n"
            ));
        }
        let config = Config::parse(&text).unwrap();
        Live {
            router: Router::new(&config),
            config: Arc::new(config),
            generation,
        }
    }

    fn name(route: Route) -> String {
        match route {
            Route::Space(space) => space.name.clone(),
            Route::UnknownHost => "unknown".into(),
            Route::Misdirected => "misdirected".into(),
        }
    }

    #[test]
    fn the_first_route_is_remembered_only_for_its_table() {
        let conn = ConnInfo::plain("127.0.0.1:1".parse().unwrap());
        let before = live(&[("aaa", "a.example.com"), ("bbb", "b.example.com")], 0);
        assert_eq!(name(conn.route(&before, "a.example.com")), "aaa");
        assert_eq!(name(conn.route(&before, "a.example.com")), "aaa");
        assert_eq!(name(conn.route(&before, "b.example.com")), "bbb");
        // A reload moved the domain: the connection sees the new table at once.
        let after = live(&[("ccc", "a.example.com")], 1);
        assert_eq!(name(conn.route(&after, "a.example.com")), "ccc");
        assert_eq!(name(conn.route(&after, "b.example.com")), "unknown");
    }

    #[test]
    fn a_server_name_of_another_space_is_misdirected() {
        let table = live(&[("aaa", "a.example.com"), ("bbb", "b.example.com")], 0);
        let conn = ConnInfo::tls("127.0.0.1:1".parse().unwrap(), Some("b.example.com".into()));
        assert_eq!(name(conn.route(&table, "a.example.com")), "misdirected");
        assert_eq!(name(conn.route(&table, "a.example.com")), "misdirected");
        assert_eq!(name(conn.route(&table, "b.example.com")), "bbb");
        assert_eq!(name(conn.route(&table, "B.example.com.")), "bbb");
    }
}
