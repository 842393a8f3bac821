-- mpm-harness: the fault handler for the `apache` target (mod_lua, Lua 5.3).
--
-- Serves what refhttpd serves, so spec cases run unchanged against Apache httpd 2.4:
--   /               200, a short body
--   /bytes/SIZE     SIZE bytes built in memory for this request: 64-byte lines
--                   `abc…zabc…zabc…k\n`, repeated (the body the harness checks)
--   /static/SIZE    a real file of the same SIZE bytes (made on demand by `translate`, served
--                   by core)
--   /fault/FAULT    the fault, performed on the worker that serves the request (`shared:DUR`
--                   keeps its slot in mod_lua's per-process ivm variables)
-- Every response from here carries `X-Served-By: pid=<child pid>` (Apache exposes no slot or
-- thread index to Lua).
--
-- The harness writes this file into the server's temp dir with `STATIC_DIR = "…"` and
-- `FAULTS = true|false` prepended: without faults (the case's `faults = false`, as refhttpd
-- without `--faults`) a `/fault/...` request answers 404 and nothing happens.
-- Loaded with `LuaScope thread`: one Lua state per worker thread for the thread's life, so
-- `leak:` keeps what it allocates.

local PATTERN = string.rep("abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijk\n", 1024)

local function pid()
  local f = io.open("/proc/self/stat")
  local n = f:read("n")
  f:close()
  return math.tointeger(n)
end

-- Apache-style durations: bare = seconds; us, ms, s, min (m), h. Returns seconds or nil.
local function duration(text)
  local num, unit = string.match(text or "", "^%s*([%d%.]+)%s*(%a*)%s*$")
  num = tonumber(num)
  if not num then return nil end
  local scale = ({ [""] = 1, s = 1, ms = 1e-3, us = 1e-6, min = 60, m = 60, h = 3600 })[string.lower(unit)]
  if not scale then return nil end
  return num * scale
end

-- Sizes: bare bytes; K, M, G (binary, optional trailing B / iB).
local function size(text)
  local num, unit = string.match(text or "", "^%s*([%d%.]+)%s*(%a*)%s*$")
  num = tonumber(num)
  if not num then return nil end
  local u = string.upper(unit):gsub("I?B$", "")
  local scale = ({ [""] = 1, K = 1024, M = 1024 ^ 2, G = 1024 ^ 3 })[u]
  if not scale then return nil end
  return math.floor(num * scale)
end

local function text(r, status, body)
  r.status = status
  r.content_type = "text/plain; charset=utf-8"
  r:puts(body)
  return apache2.OK
end

-- Raises `sig` in this process. Lua has no kill(2); the shell's does it. Apache leaves the
-- synchronous signals (SEGV, BUS, ABRT …) unblocked in every thread, and its fatal-signal
-- handler re-raises with the default action, so the process dies by that signal.
local function raise(r, sig, me)
  os.execute("kill -" .. sig .. " " .. me)
  while true do r.usleep(1000000) end
end

leaked = leaked or {}

local function fault(r, spec, me)
  local kind, arg = string.match(spec, "^([%a]+):?(.*)$")
  if kind == "crash" then
    local sig = ({ segv = "SEGV", abort = "ABRT", bus = "BUS" })[arg]
    if not sig then return text(r, 400, "unknown signal `" .. arg .. "` (use segv, abort or bus)\n") end
    raise(r, sig, me)
  elseif kind == "exit" then
    local code = tonumber(arg)
    if not code or code < 0 or code > 255 or code ~= math.floor(code) then
      return text(r, 400, "exit code `" .. arg .. "` is not in 0..=255\n")
    end
    io.stdout:flush()
    os.exit(math.tointeger(code), false)
  elseif kind == "panic" and arg == "" then
    error("fault: panic in the request handler")
  elseif kind == "sleep" then
    local d = duration(arg)
    if not d then return text(r, 400, "`" .. arg .. "` is not a duration\n") end
    r.usleep(math.floor(d * 1e6))
    return text(r, 200, "slept " .. spec .. "\n")
  elseif kind == "busy" then
    local d = duration(arg)
    if not d then return text(r, 400, "`" .. arg .. "` is not a duration\n") end
    local stop = r:clock() + d * 1e6
    local x = 0
    while r:clock() < stop do
      for i = 1, 10000 do x = (x * 6364136223846793005 + 1) & 0xffffffff end
    end
    return text(r, 200, "was busy " .. spec .. "\n")
  elseif kind == "hang" and arg == "" then
    while true do r.usleep(3600 * 1000000) end
  elseif kind == "close" and arg == "" then
    -- mod_lua's websocket close: closes the client socket and detaches the output filters, so
    -- nothing (no status line) reaches the client.
    r:wsclose()
    return apache2.DONE
  elseif kind == "shared" then
    -- A handler that is not thread-safe (TS-1): one slot its process keeps (mod_lua's ivm
    -- variables are per process, shared by every Lua state in it), written with this request's
    -- token, held, and read back. Each ivm call takes mod_lua's mutex; nothing is held across
    -- the wait.
    local d = duration(arg)
    if not d then return text(r, 400, "`" .. arg .. "` is not a duration\n") end
    local mine = (string.gsub(tostring(r), "%W", "")) .. "." .. tostring(r:clock())
    r:ivm_set("mpm-harness-shared", mine)
    r.usleep(math.floor(d * 1e6))
    local found = r:ivm_get("mpm-harness-shared")
    local word = (found == mine) and "intact" or "clobbered"
    r.headers_out["X-Shared-State"] = word
    r.headers_out["X-Shared-Token"] = mine
    r.headers_out["X-Shared-Found"] = tostring(found)
    return text(r, 200, "shared state " .. word .. "\n")
  elseif kind == "leak" then
    local n = size(arg)
    if not n then return text(r, 400, "`" .. arg .. "` is not a size\n") end
    -- string.rep writes every byte: the pages count in RSS.
    leaked[#leaked + 1] = string.rep("x", n)
    return text(r, 200, "leaked " .. n .. " bytes\n")
  end
  return text(r, 400, "invalid fault `" .. spec .. "`\n")
end

function handle(r)
  local me = pid()
  r.headers_out["X-Served-By"] = "pid=" .. me
  local uri = r.uri
  if uri == "/" then
    return text(r, 200, "apache: it works\n")
  end
  local n = string.match(uri, "^/bytes/(.+)$")
  if n then
    local len = size(n)
    if not len then return text(r, 400, "`" .. n .. "` is not a size\n") end
    r.content_type = "application/octet-stream"
    local full, rest = len // #PATTERN, len % #PATTERN
    local body = string.rep(PATTERN, full) .. string.sub(PATTERN, 1, rest)
    r:write(body)
    return apache2.OK
  end
  local spec = string.match(uri, "^/fault/(.*)$")
  if spec and FAULTS then
    return fault(r, spec, me)
  end
  return text(r, 404, "not found\n")
end

-- translate_name hook for /static/SIZE: maps the request to a file of SIZE bytes under
-- STATIC_DIR (made on first use with the bytes of /bytes/SIZE, renamed into place so concurrent
-- children agree) and lets Apache's default handler serve it — a file body, as with a real
-- static file.
function translate(r)
  local n = string.match(r.uri, "^/static/(.+)$")
  if not n then return apache2.DECLINED end
  local len = size(n)
  if not len then return apache2.DECLINED end
  local path = STATIC_DIR .. "/" .. len
  local f = io.open(path, "rb")
  if f then
    f:close()
  else
    -- A name no other request in flight can have: the threads of one child share its pid
    -- and may read the same clock, and two writers of one temp file leave a short file
    -- behind (seen: a 0-byte response for /static/64M). The request's address is unique
    -- among the requests alive now.
    local tmp = path .. ".tmp." .. pid() .. "." .. string.gsub(tostring(r), "%W", "")
      .. "." .. tostring(r:clock())
    -- The same bytes as /bytes/SIZE (the harness checks them), written in 64 KiB blocks.
    local w = assert(io.open(tmp, "wb"))
    for _ = 1, len // #PATTERN do
      w:write(PATTERN)
    end
    w:write(string.sub(PATTERN, 1, len % #PATTERN))
    w:close()
    os.rename(tmp, path)
  end
  r.filename = path
  r.headers_out["X-Served-By"] = "pid=" .. pid()
  return apache2.OK
end
