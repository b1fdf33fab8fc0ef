-- sweep.lua - fixed batch sizes x low watermarks across stores: for each store
-- URI and each setting, N IDs taken as fast as one caller can, with the
-- wall time, IDs/s, round trips, calls that waited and IDs left unused.
-- Prints a table and writes the same rows as CSV.
--
--   idprime run bench/sweep.lua [options] [URI...]
--   LUA_CPATH="build/lua/?.so;;" lua5.4 bench/sweep.lua [options] [URI...]
--
-- options:
--   -n IDS                IDs per run (default 20000)
--   --batches 16,64,...   batch sizes (default 16,64,256,1024,4096)
--   --watermarks 0,25,50  low watermarks, percent (default 0,25,50)
--   --counter NAME        the counter used (default sweep)
--   --csv FILE            the CSV output (default sweep.csv; - for stdout)
-- URI: any store (default mem://sweep?delay_ms=1, a 1 ms simulated round
-- trip). A parameter in the URI's own query wins over the sweep's (so
-- "...?sweep_batch=64" pins the batch of the counter "sweep").
local idp = require "idprime"

local usage = [[
usage: sweep.lua [-n IDS] [--batches B,B,...] [--watermarks W,W,...]
                 [--counter NAME] [--csv FILE] [URI...]
]]

local function die(msg, code)
  io.stderr:write("sweep.lua: ", msg, "\n")
  os.exit(code or 1)
end

local function numbers(text, what)
  local list = {}
  for item in text:gmatch("[^,]+") do
    local v = math.tointeger(tonumber(item))
    if not v or v < 0 then die(what .. ": '" .. item .. "' is not a whole number\n" .. usage, 2) end
    list[#list + 1] = v
  end
  if #list == 0 then die(what .. ": empty list\n" .. usage, 2) end
  return list
end

local opts = {
  n = 20000,
  batches = {16, 64, 256, 1024, 4096},
  watermarks = {0, 25, 50},
  counter = "sweep",
  csv = "sweep.csv",
}
local uris = {}
local args = table.pack(...)
local i = 1
while i <= args.n do
  local a = args[i]
  local function value()
    i = i + 1
    if args[i] == nil then die(a .. " needs a value\n" .. usage, 2) end
    return args[i]
  end
  if a == "-n" then
    opts.n = numbers(value(), "-n")[1]
    if opts.n < 1 then die("-n must be at least 1", 2) end
  elseif a == "--batches" then opts.batches = numbers(value(), "--batches")
  elseif a == "--watermarks" then opts.watermarks = numbers(value(), "--watermarks")
  elseif a == "--counter" then opts.counter = value()
  elseif a == "--csv" then opts.csv = value()
  elseif a == "-h" or a == "--help" then io.write(usage) os.exit(0)
  elseif a:sub(1, 1) == "-" then die("unknown option " .. a .. "\n" .. usage, 2)
  else uris[#uris + 1] = a
  end
  i = i + 1
end
if #uris == 0 then uris = {"mem://sweep?delay_ms=1"} end

local columns = {
  "uri", "store", "batch", "low_watermark", "ids", "wall_s", "ids_per_s",
  "roundtrips_engine", "roundtrips_store", "prefetch_async", "waited_calls",
  "unused_ids",
}

-- One run: a fresh client with these settings, n IDs through bench().
local function run(uri, batch, watermark)
  -- per-counter keys, so they apply to any name (inode has its own default);
  -- fixed batches (adaptive = 0): the sweep is over the batch itself
  local c <close>, err = idp.open(uri, {
    [opts.counter .. "_batch"] = batch,
    [opts.counter .. "_low_watermark"] = watermark,
    [opts.counter .. "_adaptive"] = 0,
  })
  if not c then die(err) end
  local k = assert(c:counter(opts.counter))
  local before = c:roundtrips()
  local secs, berr = k:bench(opts.n)
  if not secs then die(uri .. ": " .. berr) end
  local after = c:roundtrips()
  local s = k:stats()
  return {
    uri = uri, store = c:store(), batch = s.batch,
    low_watermark = watermark, ids = opts.n, wall_s = secs,
    ids_per_s = secs > 0 and opts.n / secs or 0,
    roundtrips_engine = s.prime_calls,
    roundtrips_store = (before and after) and (after - before) or "",
    prefetch_async = s.prefetch_async, waited_calls = s.waited_calls,
    unused_ids = s.unused_ids,
  }
end

local rows = {}
for _, uri in ipairs(uris) do
  for _, batch in ipairs(opts.batches) do
    for _, wm in ipairs(opts.watermarks) do
      rows[#rows + 1] = run(uri, batch, wm)
    end
  end
end

-- The table.
local head = string.format("%-28s %7s %4s %9s %12s %8s %8s %8s %8s",
  "uri", "batch", "wm", "wall_s", "ids/s", "trips", "async", "waited",
  "unused")
print(head)
print(string.rep("-", #head))
for _, r in ipairs(rows) do
  local uri = #r.uri > 28 and ("..." .. r.uri:sub(-25)) or r.uri
  print(string.format("%-28s %7d %4d %9.4f %12.0f %8d %8d %8d %8d", uri,
    r.batch, r.low_watermark, r.wall_s, r.ids_per_s, r.roundtrips_engine,
    r.prefetch_async, r.waited_calls, r.unused_ids))
end

-- The CSV: a field with a comma or quote is quoted.
local function field(v)
  v = type(v) == "number" and math.type(v) == "float"
      and string.format("%.6f", v) or tostring(v)
  if v:find('[,"\n]') then v = '"' .. v:gsub('"', '""') .. '"' end
  return v
end
local out, err = io.stdout, nil
if opts.csv ~= "-" then
  out, err = io.open(opts.csv, "w")
  if not out then die("cannot write " .. opts.csv .. ": " .. err) end
end
out:write(table.concat(columns, ","), "\n")
for _, r in ipairs(rows) do
  local line = {}
  for j, col in ipairs(columns) do line[j] = field(r[col]) end
  out:write(table.concat(line, ","), "\n")
end
if out ~= io.stdout then
  assert(out:close())
  io.stderr:write(string.format("sweep.lua: %d runs written to %s\n",
                                #rows, opts.csv))
end
