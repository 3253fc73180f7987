-- wrk script for `make bench`: each wrk thread takes its own logged-in parents from a file
-- (one line each: method, path, cookie, csrf, body-on, body-off; tab-separated) and sends
-- their requests in turn, so that every connection carries a session of its own.
-- args: <file> <threads>.  A POST alternates its two bodies (tick / untick: both are writes).
-- Any status but 200 is counted as an error (a lost session would answer 302).

local counter = 0
local threads = {}

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local users = {}
local turn = 0
bad = 0

local function split(line)
  local out = {}
  for part in string.gmatch(line, "([^\t]*)\t?") do table.insert(out, part) end
  return out
end

function init(args)
  local nthreads = tonumber(args[2])
  local i = 0
  for line in io.lines(args[1]) do
    if line ~= "" and i % nthreads == id then
      local f = split(line)
      local headers = {["Accept-Language"] = "fr"}
      if f[3] ~= "" then headers["Cookie"] = f[3] end
      if f[1] == "POST" then headers["Content-Type"] = "application/x-www-form-urlencoded" end
      if f[4] ~= "" then
        headers["X-CSRFToken"] = f[4]
        headers["HX-Request"] = "true"
      end
      table.insert(users, {method = f[1], path = f[2], headers = headers, on = f[5], off = f[6], flip = 0})
    end
    i = i + 1
  end
end

function request()
  turn = turn % #users + 1
  local u = users[turn]
  if u.method == "GET" then
    return wrk.format("GET", u.path, u.headers)
  end
  u.flip = 1 - u.flip
  return wrk.format("POST", u.path, u.headers, u.flip == 1 and u.on or u.off)
end

function response(status, headers, body)
  if status ~= 200 then bad = bad + 1 end
end

function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + (t:get("bad") or 0) end
  io.write(string.format("BADSTATUS %d\n", total))
end
