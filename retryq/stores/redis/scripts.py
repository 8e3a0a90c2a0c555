"""The Lua scripts of a Redis queue: every change is one script, atomic on the server.

The keys of a queue all start with ``{namespace}:`` (the braces keep them in one hash slot):

``rec``      hash   id → the job's record, as retryq last wrote it (JSON, unknown keys kept)
``claim``    hash   id → what a claim changed (run id, owner, start, lease end, limit), laid over
                    the record on reading until the next write of the job replaces both
``meta``     hash   id → ``{"v": version, "s": status, "w": workflow, "k": key, "e": due score}``
``order``    zset   id → position in the queue (``seq`` counts them)
``ids``      zset   every id at score 0, for prefixes (ZRANGEBYLEX)
``open``     hash   "workflow client date" → the id of its open (pending or running) job
``due:<w>``  zset   the pending jobs of workflow ``w`` by due score
``nrun``     hash   workflow → how many of its jobs run (for ``global_concurrency``)
``arc``      hash   id → the last copy of a pruned job; ``arcorder`` zset its position
``reply:<t>`` the ids a claim of token ``t`` took, for 10 minutes: a claim sent again after its
                    reply was lost gets the same jobs back instead of claiming more
``state``    hash   key → a state document (JSON)
``statev``   hash   key → its version, raised by each write or deletion (never removed: no ABA)
``statever`` string the version of the whole state, raised by each write that changes a document

The due score is ``band × 2^43 + executeAt in ms``, the band being ``-priority`` (2^43 ms reach the
year 2248, and doubles hold integers exactly up to 2^53: bands -100 to 100 fit): within a workflow's
``due:<w>``, the highest priority comes first, then the oldest due time. A job of priority 0 (every
job written before priorities) has its due time as its score, as it always had. A claim reads the
bands of a workflow that hold jobs in order (each found from the last with one lookup), and takes
jobs in :func:`retryq.record.rules.claim_order`: first, from every band, those due for longer than
``max_wait`` (oldest due first); then each band from its start up to its "now".

Scripts judge "now" by the server's clock (``TIME``): due times and leases do not depend on the
clock of the host that claims. A write whose versions no longer match what the caller read writes
nothing and says ``conflict``; the caller reads again and applies its pure mutations again. State
documents work the same way: a plan runs on documents read with their versions (and the server's
``TIME``), and the commit that writes its decision checks them first, with the jobs' versions.
"""

from __future__ import annotations

__all__ = ["ADD", "COMMIT", "INSERT", "READ", "SCHEMA_VERSION"]

SCHEMA_VERSION = 1

_COMMON = """
local P = KEYS[1]
local function k(name) return P .. ':' .. name end
local function server_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function int(x) return string.format('%.0f', x) end
local BAND = 8796093022208 -- 2^43: a due score is band * BAND + executeAt in ms, the band being -priority
local function band_of(score) return math.floor(score / BAND) end
local function due_ms(score) return score - band_of(score) * BAND end
local function meta_of(id)
  local m = redis.call('HGET', k('meta'), id)
  if m then return cjson.decode(m) end
  return nil
end
local function is_open(s) return s == 'pending' or s == 'running' end
local function unindex(id, m)
  if m.s == 'pending' then redis.call('ZREM', k('due:' .. m.w), id) end
  if m.s == 'running' then redis.call('HINCRBY', k('nrun'), m.w, -1) end
  if is_open(m.s) and redis.call('HGET', k('open'), m.k) == id then redis.call('HDEL', k('open'), m.k) end
end
local function index(id, m)
  if m.s == 'pending' then redis.call('ZADD', k('due:' .. m.w), m.e, id) end
  if m.s == 'running' then redis.call('HINCRBY', k('nrun'), m.w, 1) end
  if is_open(m.s) then redis.call('HSET', k('open'), m.k, id) end
end
local function place(id)
  local seq = redis.call('INCR', k('seq'))
  if seq == 1 then redis.call('SET', k('version'), ARGV[2]) end
  redis.call('ZADD', k('order'), seq, id)
  redis.call('ZADD', k('ids'), 0, id)
end
local function put(id, rec, m, version)
  m.v = version
  redis.call('HSET', k('rec'), id, rec)
  if version > 1 then redis.call('HDEL', k('claim'), id) end
  redis.call('HSET', k('meta'), id, cjson.encode(m))
  index(id, m)
end
local function archive(id, rec, replace)
  if replace or redis.call('HEXISTS', k('arc'), id) == 0 then
    redis.call('HSET', k('arc'), id, rec)
    if not redis.call('ZSCORE', k('arcorder'), id) then
      redis.call('ZADD', k('arcorder'), redis.call('INCR', k('seq')), id)
    end
  end
end
local function row(id)
  return {id, redis.call('HGET', k('rec'), id) or '', redis.call('HGET', k('claim'), id) or '',
          redis.call('HGET', k('meta'), id) or ''}
end
local function notify_if_due(m, now)
  if m.s == 'pending' and due_ms(tonumber(m.e)) <= now then
    redis.call('PUBLISH', k('due'), 'due')
    return true
  end
  return false
end
"""

# ARGV[1]: {"ops": [...], "archive": 0|1, "claim": {...}?, "token": "..."?, "state": {...}?}; ARGV[2]: the
# schema version. An op: {"id", "v" (the version read; 0: none), "del": true, "arc": archived record} or {"id",
# "v", "rec", "meta"} or {"id", "v", "check": true} (a job a plan saw but nothing changes: its version is
# checked, nothing written). "state": {"expect": {key: version read}, "whole": version of the whole state
# read (a plan over every document)?, "put": {key: JSON}, "del": [key]}.
# Returns {"conflict", id} | {"open", id, holder} | {"ok", {id, version, ...}, {rows claimed}}.
COMMIT = (
    _COMMON
    + """
local req = cjson.decode(ARGV[1])
if req.token then
  local seen = redis.call('GET', k('reply:' .. req.token))
  if seen then
    local rows = {}
    for _, id in ipairs(cjson.decode(seen)) do rows[#rows + 1] = row(id) end
    return {'ok', {}, rows}
  end
end
local now = server_ms()
local st = req.state
if st then
  if st.whole and tonumber(redis.call('GET', k('statever')) or '0') ~= st.whole then return {'conflict', 'state'} end
  for key, v in pairs(st.expect) do
    if tonumber(redis.call('HGET', k('statev'), key) or '0') ~= v then return {'conflict', 'state ' .. key} end
  end
end
local olds, inbatch = {}, {}
for i, op in ipairs(req.ops) do
  local m = meta_of(op.id)
  if (m and m.v or 0) ~= op.v then return {'conflict', op.id} end
  olds[i] = m
  if not op.check then inbatch[op.id] = true end
end
-- One open job per key: among the jobs written, and against the open jobs not written.
local taken = {}
for _, op in ipairs(req.ops) do
  if not op.del and not op.check and is_open(op.meta.s) then
    local other = taken[op.meta.k]
    if other then return {'open', op.id, other} end
    taken[op.meta.k] = op.id
  end
end
for _, op in ipairs(req.ops) do
  if not op.del and not op.check and is_open(op.meta.s) then
    local holder = redis.call('HGET', k('open'), op.meta.k)
    if holder and holder ~= op.id and not inbatch[holder] then return {'open', op.id, holder} end
  end
end
local written, due = {}, false
for i, op in ipairs(req.ops) do
  local m = olds[i]
  if m and not op.check then unindex(op.id, m) end
  if op.check then
    -- seen by a plan, not changed: its version was checked above
  elseif op.del then
    if m then
      if req.archive == 1 then archive(op.id, op.arc, true) end
      redis.call('HDEL', k('rec'), op.id)
      redis.call('HDEL', k('claim'), op.id)
      redis.call('HDEL', k('meta'), op.id)
      redis.call('ZREM', k('order'), op.id)
      redis.call('ZREM', k('ids'), op.id)
    end
  else
    if not m then place(op.id) end
    local version = (m and m.v or 0) + 1
    put(op.id, op.rec, op.meta, version)
    written[#written + 1] = op.id
    written[#written + 1] = version
    if not due then due = notify_if_due(op.meta, now) end
  end
end
if st then
  local changed = false
  for key, text in pairs(st.put) do
    redis.call('HSET', k('state'), key, text)
    redis.call('HINCRBY', k('statev'), key, 1)
    changed = true
  end
  for _, key in ipairs(st.del) do
    redis.call('HDEL', k('state'), key)
    redis.call('HINCRBY', k('statev'), key, 1)
    changed = true
  end
  if changed then redis.call('INCR', k('statever')) end
end
local rows = {}
local c = req.claim
if c then
  local cnow = c.now or now
  local due_by = cnow + c.ahead
  local excluded = {}
  for _, id in ipairs(c.exclude) do excluded[id] = true end
  -- Overdue: due for longer than max_wait (strictly before this time); none without a max_wait.
  local overdue_before = c.max_wait and (cnow - c.max_wait) or -1
  -- Up to `need` jobs of `key` with scores from lo to hi (hi excluded with `open`), in score order, ties at the
  -- end all taken (their queue order decides, as it does in the rules); page by page: the jobs this run already
  -- started (excluded) are rarely pending again.
  local function take(key, lo, hi, open, need, rank, w, into)
    local got, offset, page, last = 0, 0, need + math.min(#c.exclude, 16), nil
    local upper = (open and '(' or '') .. int(hi)
    while true do
      local ids = redis.call('ZRANGEBYSCORE', key, int(lo), upper, 'WITHSCORES', 'LIMIT', offset, page)
      for j = 1, #ids, 2 do
        local score = tonumber(ids[j + 1])
        if got >= need and score ~= last then return end
        if not excluded[ids[j]] then
          got, last = got + 1, score
          into[#into + 1] = {id = ids[j], e = due_ms(score), r = rank, w = w,
                             n = tonumber(redis.call('ZSCORE', k('order'), ids[j]))}
        end
      end
      if #ids < 2 * page then return end
      offset = offset + page
    end
  end
  local function before(a, b)
    if a.r ~= b.r then return a.r > b.r end
    if a.e ~= b.e then return a.e < b.e end
    return a.n < b.n
  end
  local found = {}
  for _, w in ipairs(c.workflows) do
    local room = w.free
    if w.cap >= 0 then
      room = math.min(room, w.cap - tonumber(redis.call('HGET', k('nrun'), w.name) or '0'))
    end
    local key = k('due:' .. w.name)
    local bands, first = {}, redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    while room > 0 and first[1] do
      bands[#bands + 1] = band_of(tonumber(first[2]))
      first = redis.call('ZRANGEBYSCORE', key, int((bands[#bands] + 1) * BAND), '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
    end
    local mine = {}
    if overdue_before > 0 then
      for _, b in ipairs(bands) do
        take(key, b * BAND, b * BAND + math.min(overdue_before, due_by + 1), true, room, c.overdue_rank, w, mine)
      end
      table.sort(mine, before)
      for i = #mine, room + 1, -1 do mine[i] = nil end
    end
    for _, b in ipairs(bands) do
      if #mine >= room then break end
      local ranked = {}
      take(key, b * BAND + math.max(overdue_before, 0), b * BAND + due_by, false, room - #mine, -b, w, ranked)
      table.sort(ranked, before)
      for i = 1, math.min(#ranked, room - #mine) do mine[#mine + 1] = ranked[i] end
    end
    for _, item in ipairs(mine) do found[#found + 1] = item end
  end
  table.sort(found, before)
  local claimed = {}
  for i = 1, math.min(#found, c.limit) do
    local id, w = found[i].id, found[i].w
    local m = meta_of(id)
    unindex(id, m)
    m.s = 'running'
    m.v = m.v + 1
    redis.call('HSET', k('meta'), id, cjson.encode(m))
    index(id, m)
    redis.call('HSET', k('claim'), id, cjson.encode({
      r = c.runs[i], s = int(cnow), l = int(cnow + w.lease), o = c.owner, m = w.max}))
    claimed[#claimed + 1] = id
    rows[#rows + 1] = row(id)
  end
  if req.token then redis.call('SET', k('reply:' .. req.token), cjson.encode(claimed), 'PX', 600000) end
end
return {'ok', written, rows}
"""
)

# ARGV[1]: the id, ARGV[2]: the schema version, ARGV[3]: the record, ARGV[4]: its meta. Adds the job unless
# its key has an open job: {"added", version} | {"open", row of the holder} | {"exists", row}.
ADD = (
    _COMMON
    + """
local id, m = ARGV[1], cjson.decode(ARGV[4])
local holder = redis.call('HGET', k('open'), m.k)
if holder then return {'open', row(holder)} end
if redis.call('HEXISTS', k('meta'), id) == 1 then return {'exists', row(id)} end
place(id)
put(id, ARGV[3], m, 1)
notify_if_due(m, server_ms())
return {'added', 1}
"""
)

# ARGV[1]: {"jobs": [{"id", "rec", "meta"}], "archived": [{"id", "rec"}], "archive": 0|1, "dry": 0|1};
# ARGV[2]: the schema version.
# All or nothing: {"open", id, holder} before anything is written, else {"ok", {ids added}, {ids archived}}.
INSERT = (
    _COMMON
    + """
local req = cjson.decode(ARGV[1])
local new, kept = {}, {}
for _, job in ipairs(req.jobs) do
  if redis.call('HEXISTS', k('rec'), job.id) == 0 then
    if is_open(job.meta.s) then
      local holder = redis.call('HGET', k('open'), job.meta.k)
      if holder then return {'open', job.id, holder} end
    end
    new[#new + 1] = job
  end
end
if req.archive == 1 then
  for _, job in ipairs(req.archived) do
    if redis.call('HEXISTS', k('arc'), job.id) == 0 then kept[#kept + 1] = job end
  end
end
local added, archived = {}, {}
local now, due = server_ms(), false
if req.dry == 0 and #new + #kept > 0 then redis.call('SET', k('version'), ARGV[2]) end
for _, job in ipairs(new) do
  if req.dry == 0 then
    place(job.id)
    put(job.id, job.rec, job.meta, 1)
    if not due then due = notify_if_due(job.meta, now) end
  end
  added[#added + 1] = job.id
end
for _, job in ipairs(kept) do
  if req.dry == 0 then archive(job.id, job.rec, false) end
  archived[#archived + 1] = job.id
end
return {'ok', added, archived}
"""
)

# ARGV[1]: "all" | "ids" | "status", ARGV[2]: the schema version, then the ids or statuses.
# Rows {id, record, claim, meta}, in queue order; with "all", records written into the hash by hand
# (no position) come last.
# Or ARGV[1]: "state", then "all" | "some", the key of the open job wanted ("" for none), the keys: {the
# server's time in ms, the version of the whole state, the open job's row or {}, key, version, document, ...}.
READ = (
    _COMMON
    + """
local mode, out = ARGV[1], {}
if mode == 'state' then
  local holder = {}
  if ARGV[4] ~= '' then
    local id = redis.call('HGET', k('open'), ARGV[4])
    if id then holder = row(id) end
  end
  out = {server_ms(), tonumber(redis.call('GET', k('statever')) or '0'), holder}
  local function emit_state(key, doc)
    out[#out + 1] = key
    out[#out + 1] = tonumber(redis.call('HGET', k('statev'), key) or '0')
    out[#out + 1] = doc or ''
  end
  if ARGV[3] == 'all' then
    local all = redis.call('HGETALL', k('state'))
    for i = 1, #all, 2 do emit_state(all[i], all[i + 1]) end
  else
    for i = 5, #ARGV do emit_state(ARGV[i], redis.call('HGET', k('state'), ARGV[i])) end
  end
  return out
end
local function emit(id)
  local rec = redis.call('HGET', k('rec'), id)
  if rec then
    out[#out + 1] = id
    out[#out + 1] = rec
    out[#out + 1] = redis.call('HGET', k('claim'), id) or ''
    out[#out + 1] = redis.call('HGET', k('meta'), id) or ''
  end
end
if mode == 'ids' then
  for i = 3, #ARGV do emit(ARGV[i]) end
  return out
end
local ids = redis.call('ZRANGE', k('order'), 0, -1)
if mode == 'status' then
  local wanted = {}
  for i = 3, #ARGV do wanted[ARGV[i]] = true end
  for _, id in ipairs(ids) do
    local m = redis.call('HGET', k('meta'), id)
    if m and wanted[cjson.decode(m).s] then emit(id) end
  end
  return out
end
for _, id in ipairs(ids) do emit(id) end
if redis.call('HLEN', k('rec')) > #ids then
  local placed = {}
  for _, id in ipairs(ids) do placed[id] = true end
  local others = {}
  for _, id in ipairs(redis.call('HKEYS', k('rec'))) do
    if not placed[id] then others[#others + 1] = id end
  end
  table.sort(others)
  for _, id in ipairs(others) do emit(id) end
end
return out
"""
)
