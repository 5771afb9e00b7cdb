"""The queue's Lua scripts: every change of a file's owner happens in one of these, atomically.

Each script takes the key prefix as ``ARGV[1]`` (one server, no cluster: keys are built in
the script) and reads the clock with the server's ``TIME``, so engines with skewed clocks
agree on when a lease lapses. Shared helpers are prepended to each script.

File states: ``queued`` (in ``ready``), ``running`` (leased), ``paused`` (its job is
paused), ``completed``, ``failed``, ``cancelled``. Job states follow the single engine's
(``pending``, ``processing``, ``paused``, ``completed``, ``failed``, ``cancelled``);
``left`` counts the job's files not finished yet.
"""

from __future__ import annotations

COMMON = """
local p = ARGV[1]
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function score(job, f)
  local prio = tonumber(redis.call('HGET', p .. 'job:' .. job, 'priority') or '0')
  local seq = tonumber(redis.call('HGET', p .. 'file:' .. f, 'seq') or '0')
  return -prio * 1099511627776 + seq
end
-- a file reached an end: count it, and end its job when it was the last
local function ended(job, f, state)
  local jk = p .. 'job:' .. job
  redis.call('HSET', p .. 'file:' .. f, 'state', state)
  if state == 'failed' then redis.call('HINCRBY', jk, 'failed', 1) end
  local left = redis.call('HINCRBY', jk, 'left', -1)
  if left <= 0 then
    local js = redis.call('HGET', jk, 'state')
    if js ~= 'cancelled' and js ~= 'paused' then
      local failed = tonumber(redis.call('HGET', jk, 'failed') or '0')
      redis.call('HSET', jk, 'state', failed > 0 and 'failed' or 'completed',
                 'finished_at', now_ms() / 1000)
    end
  end
end
-- a file leaves its engine without an end: back to the queue, or paused/cancelled with its job
local function release(f)
  local fk = p .. 'file:' .. f
  redis.call('ZREM', p .. 'leases', f)
  local owner = redis.call('HGET', fk, 'engine')
  if owner then redis.call('SREM', p .. 'held:' .. owner, f) end
  redis.call('HSET', fk, 'last_engine', owner or '')
  redis.call('HDEL', fk, 'engine')
  local job = redis.call('HGET', fk, 'job')
  local js = redis.call('HGET', p .. 'job:' .. job, 'state')
  if js == 'cancelled' then
    ended(job, f, 'cancelled')
  elseif js == 'paused' then
    redis.call('HSET', fk, 'state', 'paused')
  else
    redis.call('HSET', fk, 'state', 'queued')
    redis.call('ZADD', p .. 'ready', score(job, f), f)
  end
end
local function lapse(now)
  local lapsed = redis.call('ZRANGEBYSCORE', p .. 'leases', '-inf', now)
  for _, f in ipairs(lapsed) do release(f) end
  return #lapsed
end
"""

#: ARGV: prefix, job id, job fields (JSON object), then file id / request JSON pairs.
#: Creates the job on its first call; later calls add more files (a big job in chunks).
ADD = """
local job = ARGV[2]
local jk = p .. 'job:' .. job
if redis.call('EXISTS', jk) == 0 then
  local fields = cjson.decode(ARGV[3])
  for k, v in pairs(fields) do redis.call('HSET', jk, k, tostring(v)) end
  redis.call('HSET', jk, 'state', 'pending', 'left', 0, 'failed', 0, 'files', 0,
             'created_at', now_ms() / 1000)
  redis.call('ZADD', p .. 'jobs', redis.call('INCR', p .. 'jobseq'), job)
end
local js = redis.call('HGET', jk, 'state')
local n = 0
for i = 4, #ARGV, 2 do
  local f = ARGV[i]
  local fk = p .. 'file:' .. f
  if redis.call('EXISTS', fk) == 0 then
    local seq = redis.call('INCR', p .. 'fileseq')
    redis.call('HSET', fk, 'job', job, 'request', ARGV[i + 1], 'seq', seq, 'attempts', 0,
               'state', js == 'paused' and 'paused' or 'queued')
    redis.call('RPUSH', p .. 'jfiles:' .. job, f)
    if js ~= 'paused' then redis.call('ZADD', p .. 'ready', score(job, f), f) end
    n = n + 1
  end
end
redis.call('HINCRBY', jk, 'left', n)
redis.call('HINCRBY', jk, 'files', n)
if js == 'completed' or js == 'failed' then
  if n > 0 then redis.call('HSET', jk, 'state', 'pending') end
end
return n
"""

#: ARGV: prefix, engine, lease (ms). Returns {file, token, request, checkpoint, job} or {}.
CLAIM = """
local engine, lease = ARGV[2], tonumber(ARGV[3])
local now = now_ms()
lapse(now)
local best = redis.call('ZPOPMIN', p .. 'ready')
if #best == 0 then return {} end
local f = best[1]
local fk = p .. 'file:' .. f
local token = redis.call('INCR', p .. 'fence')
local job = redis.call('HGET', fk, 'job')
redis.call('HSET', fk, 'state', 'running', 'engine', engine, 'token', token,
           'claimed_at', now / 1000)
redis.call('HINCRBY', fk, 'attempts', 1)
redis.call('ZADD', p .. 'leases', now + lease, f)
redis.call('SADD', p .. 'held:' .. engine, f)
local jk = p .. 'job:' .. job
if redis.call('HGET', jk, 'state') == 'pending' then
  redis.call('HSET', jk, 'state', 'processing')
  if not redis.call('HGET', jk, 'started_at') then
    redis.call('HSET', jk, 'started_at', now / 1000)
  end
end
return {f, tostring(token), redis.call('HGET', fk, 'request'),
        redis.call('HGET', fk, 'checkpoint') or '', job,
        redis.call('HGET', fk, 'last_engine') or ''}
"""

#: ARGV: prefix, file, token, lease (ms), checkpoint JSON ('' keeps the last).
#: Returns 'run', 'paused' or 'cancelled' (the engine stops the file and releases it),
#: or 'lost' (another engine holds it now: this one is fenced out).
RENEW = """
local f, token, lease = ARGV[2], ARGV[3], tonumber(ARGV[4])
local fk = p .. 'file:' .. f
if redis.call('HGET', fk, 'token') ~= token or redis.call('HGET', fk, 'state') ~= 'running' then
  return 'lost'
end
local now = now_ms()
redis.call('ZADD', p .. 'leases', now + lease, f)
if ARGV[5] ~= '' then redis.call('HSET', fk, 'checkpoint', ARGV[5]) end
local js = redis.call('HGET', p .. 'job:' .. redis.call('HGET', fk, 'job'), 'state')
if js == 'paused' or js == 'cancelled' then return js end
return 'run'
"""

#: ARGV: prefix, file, token, outcome ('completed', 'failed', 'released'), detail JSON.
#: Returns 'ok', or 'fenced' when the token is no longer the file's (nothing changes).
FINISH = """
local f, token, outcome = ARGV[2], ARGV[3], ARGV[4]
local fk = p .. 'file:' .. f
if redis.call('HGET', fk, 'token') ~= token or redis.call('HGET', fk, 'state') ~= 'running' then
  return 'fenced'
end
redis.call('HSET', fk, 'detail', ARGV[5])
if outcome == 'released' then
  release(f)
  return 'ok'
end
redis.call('ZREM', p .. 'leases', f)
local owner = redis.call('HGET', fk, 'engine')
redis.call('SREM', p .. 'held:' .. owner, f)
redis.call('HSET', fk, 'finished_at', now_ms() / 1000)
ended(redis.call('HGET', fk, 'job'), f, outcome)
return 'ok'
"""

#: ARGV: prefix, job, action ('pause', 'resume', 'cancel', 'retry', 'priority'), value.
#: Returns the job's new state, or '' when there is no such job.
CONTROL = """
local job, action = ARGV[2], ARGV[3]
local jk = p .. 'job:' .. job
if redis.call('EXISTS', jk) == 0 then return '' end
local js = redis.call('HGET', jk, 'state')
local files = redis.call('LRANGE', p .. 'jfiles:' .. job, 0, -1)
local function fstate(f) return redis.call('HGET', p .. 'file:' .. f, 'state') end
if action == 'priority' then
  redis.call('HSET', jk, 'priority', ARGV[4])
  for _, f in ipairs(files) do
    if fstate(f) == 'queued' then redis.call('ZADD', p .. 'ready', 'XX', score(job, f), f) end
  end
elseif action == 'pause' then
  if js == 'pending' or js == 'processing' then
    redis.call('HSET', jk, 'state', 'paused')
    for _, f in ipairs(files) do
      if fstate(f) == 'queued' then
        redis.call('ZREM', p .. 'ready', f)
        redis.call('HSET', p .. 'file:' .. f, 'state', 'paused')
      end
    end
  end
elseif action == 'resume' then
  if js == 'paused' then
    redis.call('HSET', jk, 'state', 'pending')
    for _, f in ipairs(files) do
      if fstate(f) == 'paused' then
        redis.call('HSET', p .. 'file:' .. f, 'state', 'queued')
        redis.call('ZADD', p .. 'ready', score(job, f), f)
      end
    end
    if tonumber(redis.call('HGET', jk, 'left')) <= 0 then
      local failed = tonumber(redis.call('HGET', jk, 'failed') or '0')
      redis.call('HSET', jk, 'state', failed > 0 and 'failed' or 'completed')
    end
  end
elseif action == 'cancel' then
  if js ~= 'completed' and js ~= 'failed' and js ~= 'cancelled' then
    redis.call('HSET', jk, 'state', 'cancelled', 'finished_at', now_ms() / 1000)
    for _, f in ipairs(files) do
      local s = fstate(f)
      if s == 'queued' or s == 'paused' then
        redis.call('ZREM', p .. 'ready', f)
        ended(job, f, 'cancelled')
      end
    end
  end
elseif action == 'retry' then
  if js == 'completed' or js == 'failed' or js == 'cancelled' then
    local again = 0
    for _, f in ipairs(files) do
      local s = fstate(f)
      if s == 'failed' or s == 'cancelled' then
        redis.call('HSET', p .. 'file:' .. f, 'state', 'queued', 'attempts', 0)
        redis.call('HDEL', p .. 'file:' .. f, 'detail')
        redis.call('ZADD', p .. 'ready', score(job, f), f)
        again = again + 1
      end
    end
    redis.call('HSET', jk, 'state', again > 0 and 'pending' or js, 'failed', 0)
    redis.call('HINCRBY', jk, 'left', again)
    if again > 0 then redis.call('HDEL', jk, 'finished_at') end
  end
end
return redis.call('HGET', jk, 'state')
"""

#: ARGV: prefix, then job ids. Returns one JSON text per job (missing jobs: ''): its hash
#: and its files as [id, state, engine, request, attempts, detail, checkpoint] lists, so
#: ``ls`` of 10,000 jobs is a few round trips, not one per job and file.
LIST = """
local out = {}
for i = 2, #ARGV do
  local jk = p .. 'job:' .. ARGV[i]
  local flat = redis.call('HGETALL', jk)
  if #flat == 0 then
    out[#out + 1] = ''
  else
    local job = {}
    for k = 1, #flat, 2 do job[flat[k]] = flat[k + 1] end
    local files = {}
    for _, f in ipairs(redis.call('LRANGE', p .. 'jfiles:' .. ARGV[i], 0, -1)) do
      local v = redis.call('HMGET', p .. 'file:' .. f, 'state', 'engine', 'request', 'attempts',
                           'detail', 'checkpoint')
      files[#files + 1] = {f, v[1] or '', v[2] or '', v[3] or '', v[4] or '0', v[5] or '',
                           v[6] or ''}
    end
    out[#out + 1] = cjson.encode({job = job, files = files})
  end
end
return out
"""

#: ARGV: prefix. Returns lapsed leases to the queue now (``fleet status`` and tests).
LAPSE = """
return lapse(now_ms())
"""


def full(body: str) -> str:
    """A script with the shared helpers in front."""
    return COMMON + body
