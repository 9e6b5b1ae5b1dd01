-- wrk script: at the end of a run, one line "PERCENTILES req/s p50 p75 p90 p95 p99 p99.5 p99.9 max",
-- latencies in ms from wrk's own histogram (the one its --latency table reads), unrounded. Used by
-- bench/proxy_latency.sh, so that the tail's shape shows past p99, and by bench/proxy_bench.sh.
done = function(summary, latency, requests)
    local fields = { string.format("%.0f", summary.requests / (summary.duration / 1e6)) }
    for _, p in ipairs({ 50, 75, 90, 95, 99, 99.5, 99.9 }) do
        fields[#fields + 1] = string.format("%.3f", latency:percentile(p) / 1000)
    end
    fields[#fields + 1] = string.format("%.3f", latency.max / 1000)
    io.write("PERCENTILES " .. table.concat(fields, " ") .. "\n")
end
