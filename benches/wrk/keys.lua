-- Requests cycle through KEYS distinct objects (`?v=0` .. `?v=KEYS-1`), all cached beforehand.
-- The path comes from the environment (BENCH_PATH), the key count from BENCH_KEYS.
local path = os.getenv("BENCH_PATH") or "/size/1024/keys"
local keys = tonumber(os.getenv("BENCH_KEYS") or "10000")
local n = 0

init = function(args)
  n = math.random(0, keys - 1)
end

request = function()
  n = (n + 1) % keys
  return wrk.format(nil, path .. "?v=" .. n)
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d bytes=%d duration_us=%d p50_us=%d p99_us=%d errors=%d non2xx=%d\n",
    summary.requests, summary.bytes, summary.duration,
    latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
