-- test_module.lua - the Lua module under the stock lua5.4 interpreter:
-- unique IDs, runtime failures as nil + message, misuse as errors, and
-- handles that close cleanly under <close>, close() (twice) and garbage
-- collection. Run by ctest with LUA_CPATH at the built module and
-- IDPRIME_PLUGIN_PATH at the build's plugins.
local idp = require "idprime"

local passed, failed = 0, 0

local function check(name, fn)
  local ok, err = pcall(fn)
  if ok then
    passed = passed + 1
    print("ok   " .. name)
  else
    failed = failed + 1
    print("FAIL " .. name .. ": " .. tostring(err))
  end
end

local function eq(got, want, what)
  if got ~= want then
    error(string.format("%s: got %s, want %s", what or "value",
                        tostring(got), tostring(want)), 2)
  end
end

local function has(text, part, what)
  if type(text) ~= "string" or not text:find(part, 1, true) then
    error(string.format("%s: %q lacks %q", what or "text", tostring(text),
                        part), 2)
  end
end

-- raises(fn, part): fn raises an error whose message holds part
local function raises(fn, part)
  local ok, err = pcall(fn)
  if ok then error("no error raised (want one holding " .. part .. ")", 2) end
  has(tostring(err), part, "error")
end

-- A mem namespace lives while a client has it open: once every client of
-- it is closed, a new one starts from 0. That shows a client was closed.
local function namespace_value(name, counter)
  local c <close> = assert(idp.open("mem://" .. name))
  return (assert(c:get(counter)))
end

check("the module reports its version and functions", function()
  eq(type(idp.version), "string", "version")
  eq(type(idp.open), "function", "open")
  eq(type(idp.plugins), "function", "plugins")
  eq(package.loaded.idprime, idp, "package.loaded")
end)

check("idp.plugins() lists the mem plugin", function()
  local found
  for _, p in ipairs(assert(idp.plugins())) do
    if p.name == "mem" then found = p end
  end
  assert(found, "mem not listed")
  eq(found.schemes, "mem", "schemes")
  eq(math.type(found.abi), "integer", "abi")
  has(found.path, "idprime-mem.so", "path")
end)

check("next() hands out 1, 2, 3 ... and incr(n) is INCRBY", function()
  local c <close> = assert(idp.open("mem://first", {batch = 16}))
  local k = assert(c:counter("ids"))
  for want = 1, 100 do eq(k:next(), want, "next") end
  eq(k:incr(10), 110, "incr")
  eq(k:next(), 111, "next after incr")
  eq(c:store(), "mem", "store")
end)

check("two clients on one store never hand out the same ID", function()
  local a <close> = assert(idp.open("mem://shared", {batch = 7}))
  local b <close> = assert(idp.open("mem://shared", {batch = 5}))
  local ka, kb = assert(a:counter("c")), assert(b:counter("c"))
  local seen, lasta, lastb = {}, 0, 0
  for i = 1, 5000 do
    local x, y = assert(ka:next()), assert(kb:next())
    assert(not seen[x] and not seen[y] and x ~= y, "duplicate " .. x)
    assert(x > lasta and y > lastb, "not increasing")
    seen[x], seen[y], lasta, lastb = true, true, x, y
    if i % 500 == 0 then
      local last = assert(ka:incr(3))
      for id = last - 2, last do
        assert(not seen[id], "duplicate " .. id); seen[id] = true
      end
      lasta = last
    end
  end
end)

check("stats() reports the engine's counts", function()
  local c <close> = assert(idp.open("mem://stats",
                                    {batch = 10, low_watermark = 0,
                                     adaptive = 0}))
  local k = assert(c:counter("c"))
  for _ = 1, 25 do assert(k:next()) end
  local s = k:stats()
  eq(s.ids_served, 25, "ids_served")
  eq(s.prime_calls, 3, "prime_calls")
  eq(s.batch, 10, "batch")
  eq(s.high, 30, "high")
  eq(s.unused_ids, 5, "unused_ids")
  eq(s.errors, 0, "errors")
  eq(type(s.fetch_seconds), "number", "fetch_seconds")
  eq(s.in_flight, false, "in_flight")
end)

check("metrics() is Prometheus text with the counter's names", function()
  local c <close> = assert(idp.open("mem://metrics"))
  local k = assert(c:counter("inode"))
  assert(k:next())
  local text = assert(c:metrics())
  has(text, "meta_inode_ids_served_total 1", "metrics")
  has(text, "meta_inode_prime_calls_total 1", "metrics")
end)

check("bench(n) takes n IDs in C and returns the seconds", function()
  local c <close> = assert(idp.open("mem://bench"))
  local k = assert(c:counter("c"))
  local secs = assert(k:bench(10000))
  assert(type(secs) == "number" and secs >= 0, "seconds")
  eq(k:next(), 10001, "next after bench")
  assert(idp.clock() > 0, "clock")
end)

check("runtime failures return nil and a message", function()
  local c, err = idp.open("nosuch://x")
  eq(c, nil, "open of an unknown scheme")
  has(err, "no plugin for scheme 'nosuch'")
  c, err = idp.open("mem://?batch=0")
  eq(c, nil, "open with batch=0")
  has(err, "'batch'"); has(err, "1..1073741824")
  c, err = idp.open("mem://", {frobnicate = 1})
  eq(c, nil, "open with an unknown option")
  has(err, "unknown parameter 'frobnicate'")
  local ok <close> = assert(idp.open("mem://fail"))
  local k, kerr = ok:counter("bad name")
  eq(k, nil, "counter with a bad name")
  has(kerr, "bad counter name")
  k = assert(ok:counter("c"))
  assert(ok:control("fail 1"))
  local id, nerr = k:next()
  eq(id, nil, "next on a failing store")
  has(nerr, "injected failure")
  eq(k:next(), 1, "next once the store is back")
  local r, cerr = ok:control("no such command")
  eq(r, nil, "bad control"); eq(type(cerr), "string", "control message")
  c, err = idp.open(nil, {config = "/nonexistent/config.lua"})
  eq(c, nil, "open with a missing config")
  has(err, "/nonexistent/config.lua: cannot read")
end)

check("misuse raises an error", function()
  raises(function() idp.open(42) end, "bad argument #1")
  raises(function() idp.open() end, "a store URI expected")
  raises(function() idp.open("mem://", 5) end, "table expected")
  raises(function() idp.open("mem://", {batch = {}}) end,
         "option 'batch' must be a number, string or boolean")
  raises(function() idp.open("mem://", {batch = 1.5}) end,
         "option 'batch' must be a whole number")
  raises(function() idp.open("mem://", {config = 5}) end,
         "option 'config' must be a string")
  local c <close> = assert(idp.open("mem://misuse"))
  local k = assert(c:counter("c"))
  raises(function() k:incr(0) end, "must be at least 1")
  raises(function() k:incr(1.5) end, "number has no integer representation")
  raises(function() k:incr() end, "number expected")
  raises(function() c.counter(k, "x") end, "idprime.client expected")
  raises(function() k.next(c) end, "idprime.counter expected")
  raises(function() c:counter() end, "string expected")
end)

check("<close> closes the client at the end of its block", function()
  local seen
  do
    local c <close> = assert(idp.open("mem://scoped"))
    seen = c
    eq(assert(c:counter("c")):next(), 1, "first ID")
    has(tostring(c), "idprime.client (mem)")
  end
  has(tostring(seen), "closed")
  raises(function() seen:counter("c") end, "the client is closed")
  raises(function() seen:metrics() end, "the client is closed")
  seen:close() -- closing again is a no-op
  eq(namespace_value("scoped", "c"), 0, "store value after close")
end)

check("close() twice is safe and counters refuse use after it", function()
  local c = assert(idp.open("mem://twice"))
  local k = assert(c:counter("c"))
  assert(k:next())
  c:close()
  c:close()
  raises(function() k:next() end, "the counter's client is closed")
  raises(function() k:stats() end, "the counter's client is closed")
  has(tostring(k), "closed")
  eq(namespace_value("twice", "c"), 0, "store value after close")
end)

check("a counter under <close> is closed, its client stays open", function()
  local c <close> = assert(idp.open("mem://ctrclose"))
  local outer
  do
    local k <close> = assert(c:counter("c"))
    outer = k
    eq(k:next(), 1, "first ID")
  end
  raises(function() outer:next() end, "the counter is closed")
  eq(assert(c:counter("c")):next(), 2, "the client's counter goes on")
end)

-- Opens a client, takes an ID, and forgets the client: its frame is gone
-- when this returns, so nothing on the stack still holds it.
local function use_and_forget(name)
  local c = assert(idp.open("mem://" .. name))
  assert(assert(c:counter("c")):next())
end

local function counter_only(name)
  local c = assert(idp.open("mem://" .. name))
  return assert(c:counter("c"))
end

check("garbage collection closes forgotten clients", function()
  use_and_forget("gc")
  collectgarbage(); collectgarbage()
  eq(namespace_value("gc", "c"), 0, "store value once collected")
end)

check("a counter keeps its client alive until it is collected", function()
  local k = counter_only("keepalive")
  collectgarbage(); collectgarbage()
  eq(k:next(), 1, "counter of an otherwise unreferenced client")
  do
    local held <close> = assert(idp.open("mem://keepalive"))
    eq(assert(held:get("c")) > 0, true, "the first client is still open")
  end
  k = nil
  collectgarbage(); collectgarbage()
  eq(namespace_value("keepalive", "c"), 0, "store value once collected")
end)

check("a config sets the URI, the settings and the policy", function()
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write([[
return {
  uri = "mem://fromconfig",
  defaults = { batch = 10, low_watermark = 0 },
  policy = function(s) if s.fetches < 3 then return s.batch * 2 end end,
}
]])
  f:close()
  local c <close> = assert(idp.open(nil, {config = path}))
  local k = assert(c:counter("c"))
  for want = 1, 110 do eq(k:next(), want, "next") end
  eq(k:stats().batch, 40, "batch chosen by the policy")
  eq(k:stats().prime_calls, 4, "fetches")
  -- the options and then the URI override the config
  local d <close> = assert(idp.open("mem://other?low_watermark=0",
                                    {config = path, batch = 3}))
  local kd = assert(d:counter("c"))
  assert(kd:next())
  eq(kd:stats().high, 3, "first fetch with the option's batch")
  os.remove(path)
end)

check("a NUL byte in a name, URI or value is refused, not cut short", function()
  local c <close> = assert(idp.open("mem://nul"))
  raises(function() c:counter("inode\0x") end, "client:counter: the name holds a NUL byte")
  raises(function() c:get("inode\0x") end, "client:get: the name holds a NUL byte")
  raises(function() c:control("fail 1\0x") end, "client:control: the command holds a NUL byte")
  raises(function() idp.open("mem://x\0y") end, "idp.open: the URI holds a NUL byte")
  raises(function() idp.open("mem://", {batch = "8\0junk"}) end,
         "idp.open: option 'batch' holds a NUL byte")
  raises(function() idp.open("mem://", {["batch\0x"] = 8}) end,
         "idp.open: an option name holds a NUL byte")
  -- and the counter "inode" was never made by the cut name
  local k = assert(c:counter("inode"))
  eq(k:stats().ids_served, 0, "inode untouched")
end)

-- Collecting handles at exit must not crash the interpreter either.
local leak = assert(idp.open("mem://atexit"))
assert(assert(leak:counter("c")):next())

collectgarbage(); collectgarbage()
print(string.format("%d passed, %d failed", passed, failed))
os.exit(failed == 0 and 0 or 1, true)
