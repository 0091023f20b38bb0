# Varnish under test: malloc storage, the bench origin as its backend. @VARS@ are filled in by
# benches/harness.py. Varnish keeps its access log in shared memory only (no varnishncsa runs).
vcl 4.1;

backend origin {
    .host = "127.0.0.1";
    .port = "@ORIGIN@";
}

sub vcl_backend_response {
    if (beresp.status == 200) {
        set beresp.ttl = 1h;
    }
}
