-- wrk script of bench/callback_load.py: POSTs {"videoNo", "status"} to random videos' callback
-- paths and counts what it sends and what comes back. Its one argument is a Lua file that returns
-- {paths = {...}, nos = {...}, seed = N, share = <share of PARSE>}, written by the bench.
local threads = {}
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  local spec = dofile(args[1])
  paths, nos, share = spec.paths, spec.nos, spec.share
  math.randomseed(spec.seed + tid * 7919)
  sent, c2xx, c5xx = 0, 0, 0
end

function request()
  local i, status = math.random(#paths), "UNPARSE"
  if math.random() < share then status = "PARSE" end
  -- wrk calls request() once on thread 1 right after init() only to check it, and never sends
  -- that one, so it is not counted.
  if tid == 1 and not verified then verified = true else sent = sent + 1 end
  return wrk.format(nil, paths[i], nil, '{"videoNo": "' .. nos[i] .. '", "status": "' .. status .. '"}')
end

function response(status)
  if status >= 200 and status < 300 then c2xx = c2xx + 1 elseif status >= 500 then c5xx = c5xx + 1 end
end

function done(summary, latency)
  local t, e = {sent = 0, c2xx = 0, c5xx = 0}, summary.errors
  for _, thread in ipairs(threads) do
    for k in pairs(t) do t[k] = t[k] + thread:get(k) end
  end
  io.write(string.format('BENCH {"sent": %d, "completed": %d, "seconds": %f, "c2xx": %d, "c5xx": %d, ' ..
    '"socket_errors": %d, "p50_ms": %f, "p90_ms": %f, "p99_ms": %f, "max_ms": %f}\n',
    t.sent, summary.requests, summary.duration / 1e6, t.c2xx, t.c5xx,
    e.connect + e.read + e.write + e.timeout, latency:percentile(50) / 1e3,
    latency:percentile(90) / 1e3, latency:percentile(99) / 1e3, latency.max / 1e3))
end
