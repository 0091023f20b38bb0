//! What the edge's content codings cost: time to code and decode, and output size, of the
//! levels `cache::coding` chose beside faster ones, on script-like bodies of three sizes.
//! `cargo run --release --example compress_levels [file...]` (files: real assets to add).

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use edge::cache::coding::Coding;

/// A script-like body of `len` bytes.
fn script(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 64);
    let mut i: u32 = 0;
    while out.len() < len {
        let line = format!(
            "function f{i}(a, b) {{ return a * {} + b - {}; }} // {}\n",
            i.wrapping_mul(2_654_435_761) % 9973,
            i % 17,
            i % 5
        );
        out.extend_from_slice(line.as_bytes());
        i += 1;
    }
    out.truncate(len);
    out
}

/// Median time of `f` over a few runs (at least 5, at most ~1 s).
fn time(mut f: impl FnMut()) -> Duration {
    let mut runs = Vec::new();
    let started = Instant::now();
    while runs.len() < 5 || (started.elapsed() < Duration::from_secs(1) && runs.len() < 50) {
        let t = Instant::now();
        f();
        runs.push(t.elapsed());
    }
    runs.sort();
    runs[runs.len() / 2]
}

fn brotli(body: &[u8], quality: i32) -> Vec<u8> {
    let params = brotli::enc::BrotliEncoderParams {
        quality,
        lgwin: 22,
        ..Default::default()
    };
    let mut out = Vec::new();
    brotli::BrotliCompress(&mut &body[..], &mut out, &params).expect("in memory");
    out
}

fn gzip(body: &[u8], level: u32) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    e.write_all(body).expect("in memory");
    e.finish().expect("in memory")
}

fn row(name: &str, body: &[u8], encode: &dyn Fn(&[u8]) -> Vec<u8>, decode: &dyn Fn(&[u8])) {
    let coded = encode(body);
    let encode_time = time(|| {
        encode(body);
    });
    let decode_time = time(|| decode(&coded));
    println!(
        "| {name} | {} | {:.1} % | {:.2} ms | {:.1} MB/s | {:.3} ms |",
        coded.len(),
        coded.len() as f64 * 100.0 / body.len() as f64,
        encode_time.as_secs_f64() * 1e3,
        body.len() as f64 / encode_time.as_secs_f64() / 1e6,
        decode_time.as_secs_f64() * 1e3,
    );
}

fn main() {
    let mut bodies: Vec<(String, Vec<u8>)> = [10 << 10, 100 << 10, 2 << 20]
        .iter()
        .map(|&len| (format!("script {} KiB", len >> 10), script(len)))
        .collect();
    for path in std::env::args().skip(1) {
        let body = std::fs::read(&path).expect("readable file");
        bodies.push((path, body));
    }
    let br_decode = |c: &[u8]| {
        let mut out = Vec::new();
        brotli::BrotliDecompress(&mut &c[..], &mut out).expect("valid");
    };
    let zstd_decode = |c: &[u8]| {
        zstd::stream::decode_all(c).expect("valid");
    };
    let gzip_decode = |c: &[u8]| {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(c)
            .read_to_end(&mut out)
            .expect("valid");
    };
    for (name, body) in &bodies {
        println!("\n{name}: {} bytes\n", body.len());
        println!("| coding | bytes | of identity | encode | encode rate | decode |");
        println!("|---|---|---|---|---|---|");
        for coding in [Coding::Br, Coding::Zstd, Coding::Gzip] {
            let decode: &dyn Fn(&[u8]) = match coding {
                Coding::Br => &br_decode,
                Coding::Zstd => &zstd_decode,
                Coding::Gzip => &gzip_decode,
            };
            let encode = move |b: &[u8]| coding.encode(b).expect("in memory");
            row(&format!("{} (edge)", coding.name()), body, &encode, decode);
        }
        row("br 5", body, &|b| brotli(b, 5), &br_decode);
        row(
            "zstd 3",
            body,
            &|b| zstd::bulk::compress(b, 3).expect("in memory"),
            &zstd_decode,
        );
        row("gzip 6", body, &|b| gzip(b, 6), &gzip_decode);
    }
}
