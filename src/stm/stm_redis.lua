-- stm_redis.lua - server-side scripts of the Redis STM backend (src/stm/stm_redis.c).
--
-- DESIGN
-- Every STM operation is one script: one round trip, atomic against every
-- other client. An entry lives at `stm:{id}` (canonical compact JSON, PEXPIREAT
-- its expiry) with its rule links in the set `stm_ltm_links:{id}` (same
-- PEXPIREAT). Listing, filtering and counting never scan the keyspace; they
-- read index structures under the `memoryd:stm:` prefix that every write
-- script maintains in the same atomic step:
--
--   memoryd:stm:seq                  counter; INCR gives each created entry its seq
--   memoryd:stm:meta                 hash id -> "seq|expires_ms|status|final|fb|domain"
--   memoryd:stm:by_seq               zset id scored by seq (all entries: listing)
--   memoryd:stm:by_seq:status:<s>    zset by seq, per initial status slug
--   memoryd:stm:by_seq:final:<s>     zset by seq, per final status slug
--   memoryd:stm:by_seq:feedback:<b>  zset by seq, b = 0 (without) | 1 (with feedback)
--   memoryd:stm:by_seq:domain:<d>    zset by seq, per domain (id text before the first '_')
--   memoryd:stm:by_exp               zset id scored by expires_ms (all: counting and purge)
--   memoryd:stm:by_exp:feedback      zset by expires_ms, entries with feedback
--   memoryd:stm:by_exp:status:<s>    zset by expires_ms, per initial status slug
--   memoryd:stm:by_exp:final:<s>     zset by expires_ms, per final status slug
--
-- get() is normally not a script: stm_redis.c reads HGET meta, GET and
-- SMEMBERS in one MULTI/EXEC pipeline (several times cheaper for Redis than
-- running Lua) and checks the expiry itself; the `get` script below is its
-- fallback when Redis is over maxmemory.
--
-- An entry is alive while expires_ms > now (now comes from the caller; Redis
-- TIME is never used). Redis deletes an expired `stm:` key on its own, but the
-- index keeps the id until a purge step removes it: every read therefore checks
-- the expiry in the meta hash (and that the JSON still exists), and counts are
-- ZCOUNT (now, +inf] over the by_exp sets, exact at every instant. Purging
-- (ZRANGEBYSCORE by_exp -inf now) runs, bounded, at the start of every write
-- script and in bulk from the janitor's sweep.
--
-- Status slugs (compliant, non_compliant, partial, pending) and canonical
-- status names are passed in by the C side, which owns the vocabulary; "-"
-- stands for "no final status".
--
-- Reply convention: write and lookup scripts answer an array whose first
-- element is a result code: 0 ok, 1 not found, 2 conflict (id exists),
-- 3 no free generated id, 4 stored entry unreadable.
--
-- File convention (parsed by stm_redis.c at start-up): the text before the
-- first "--- script: <name>" line is a prelude prepended to every script;
-- each marker line starts a script that runs to the next marker. A "#!lua"
-- line right after the marker is the script's shebang (Redis 7 flags) and is
-- moved in front of the prelude. Scripts take no KEYS (numkeys 0) and build
-- key names here: standalone Redis only.
--
-- Flags: scripts that write carry "#!lua", so that Redis refuses them up
-- front when over maxmemory instead of failing half-way (Redis does not roll
-- back a script); scripts that only delete carry allow-oom, so that purging
-- and deleting can still free memory; read-only scripts carry no-writes.

local P = 'memoryd:stm:'
local K_SEQ = P .. 'seq'
local K_META = P .. 'meta'
local K_BY_SEQ = P .. 'by_seq'
local K_BY_EXP = P .. 'by_exp'
local K_EXP_FB = P .. 'by_exp:feedback'
local PURGE_INLINE = 16

local R_OK, R_NOTFOUND, R_CONFLICT, R_NOID, R_CORRUPT = 0, 1, 2, 3, 4

local function k_entry(id)
    return 'stm:' .. id
end

local function k_links(id)
    return 'stm_ltm_links:' .. id
end

-- "seq|exp|status|final|fb|domain" -> table, nil when absent or malformed.
local function meta_parse(s)
    if not s then
        return nil
    end
    local seq, exp, st, fin, fb, dom =
        string.match(s, '^(%d+)|(%d+)|([%w_]+)|([%w_%-]+)|([01])|(.*)$')
    if not seq then
        return nil
    end
    return {seq = seq, exp = exp, st = st, fin = fin, fb = fb, dom = dom}
end

local function meta_fmt(m)
    return m.seq .. '|' .. m.exp .. '|' .. m.st .. '|' .. m.fin .. '|' .. m.fb .. '|' .. m.dom
end

local function meta_copy(m)
    return {seq = m.seq, exp = m.exp, st = m.st, fin = m.fin, fb = m.fb, dom = m.dom}
end

local function is_alive(m, now)
    return m ~= nil and tonumber(m.exp) > now
end

-- The index sets an entry belongs to, as set key -> score.
local function memberships(m)
    local t = {}
    t[K_BY_SEQ] = m.seq
    t[P .. 'by_seq:status:' .. m.st] = m.seq
    t[P .. 'by_seq:feedback:' .. m.fb] = m.seq
    t[P .. 'by_seq:domain:' .. m.dom] = m.seq
    t[K_BY_EXP] = m.exp
    t[P .. 'by_exp:status:' .. m.st] = m.exp
    if m.fin ~= '-' then
        t[P .. 'by_seq:final:' .. m.fin] = m.seq
        t[P .. 'by_exp:final:' .. m.fin] = m.exp
    end
    if m.fb == '1' then
        t[K_EXP_FB] = m.exp
    end
    return t
end

-- Move id's index state from old to new (either may be nil), touching only
-- the sets whose membership or score changes.
local function index_move(id, old, new)
    local a = old and memberships(old) or {}
    local b = new and memberships(new) or {}
    for key, _ in pairs(a) do
        if b[key] == nil then
            redis.call('ZREM', key, id)
        end
    end
    for key, score in pairs(b) do
        if a[key] ~= score then
            redis.call('ZADD', key, score, id)
        end
    end
    if new then
        if not old or meta_fmt(old) ~= meta_fmt(new) then
            redis.call('HSET', K_META, id, meta_fmt(new))
        end
    elseif old then
        redis.call('HDEL', K_META, id)
    end
end

-- Remove an entry and all its index state (m: its meta, or nil to look it up).
local function drop(id, m)
    m = m or meta_parse(redis.call('HGET', K_META, id))
    if m then
        index_move(id, m, nil)
    else
        redis.call('HDEL', K_META, id)
        redis.call('ZREM', K_BY_EXP, id)
        redis.call('ZREM', K_BY_SEQ, id)
    end
    redis.call('DEL', k_entry(id), k_links(id))
end

-- Drop up to max entries whose expiry is at or before now; returns the count.
local function purge(now, max)
    local ids = redis.call('ZRANGEBYSCORE', K_BY_EXP, '-inf', now, 'LIMIT', 0, max)
    for i = 1, #ids do
        drop(ids[i], nil)
    end
    return #ids
end

-- Live meta of id, or nil. An expired-but-not-purged id is cleaned on the way
-- when `clean` is set (write scripts only).
local function live_meta(id, now, clean)
    local m = meta_parse(redis.call('HGET', K_META, id))
    if m and not is_alive(m, now) then
        if clean then
            drop(id, m)
        end
        return nil
    end
    return m
end

-- JSON string literal, escaping exactly like md_buf_json_str() in C so that
-- both STM backends write byte-identical JSON: '"', '\\', \n, \t, \r, other
-- C0 controls as \u00XX; everything else (UTF-8 included) verbatim.
local ESC = {['"'] = '\\"', ['\\'] = '\\\\', ['\n'] = '\\n', ['\t'] = '\\t', ['\r'] = '\\r'}
local function esc(c)
    return ESC[c] or string.format('\\u%04x', string.byte(c))
end

local function jstr(s)
    if s == nil or s == cjson.null then
        return 'null'
    end
    if not string.find(s, '[%z\1-\31"\\]') then
        return '"' .. s .. '"' -- the usual case: nothing to escape
    end
    return '"' .. (string.gsub(s, '[%z\1-\31"\\]', esc)) .. '"'
end

-- The entry in the fixed key order of include/memoryd/stm.h.
local function encode(e)
    local ia = e.initial_assessment
    local hf = e.human_feedback
    local hfs = 'null'
    if hf ~= nil and hf ~= cjson.null then
        hfs = '{"decision":' .. jstr(hf.decision) .. ',"rationale":' .. jstr(hf.rationale)
            .. ',"suggestion":' .. jstr(hf.suggestion) .. '}'
    end
    return table.concat({
        '{"scenario_id":', jstr(e.scenario_id),
        ',"requirement_text":', jstr(e.requirement_text),
        ',"initial_assessment":{"status":', jstr(ia.status),
        ',"rationale":', jstr(ia.rationale),
        ',"recommendation":', jstr(ia.recommendation),
        '},"human_feedback":', hfs,
        ',"final_status":', jstr(e.final_status),
        ',"created_at":', jstr(e.created_at),
        ',"updated_at":', jstr(e.updated_at),
        ',"expires_at":', jstr(e.expires_at), '}'})
end

-- Decoded entry of a live id, or nil, code. A vanished JSON (Redis expired
-- the key first, or it was evicted) counts as not found and is cleaned.
local function load_entry(id, m)
    local json = redis.call('GET', k_entry(id))
    if not json then
        drop(id, m)
        return nil, R_NOTFOUND
    end
    local ok, e = pcall(cjson.decode, json)
    if not ok or type(e) ~= 'table' or type(e.initial_assessment) ~= 'table' then
        return nil, R_CORRUPT
    end
    return e, R_OK
end

--- script: create
#!lua
-- ARGV: base_id generated(0|1) now_ms expires_ms status_slug max_id_len rest
-- -> {0, id, json, meta} | {2} id exists | {3} no free generated id
-- rest is the entry's canonical JSON after its scenario_id, from
-- ',"requirement_text":' to the closing brace, rendered by the daemon (the id
-- may only be known here); encoding it in Lua cost Redis ~40 us per create.
local base, generated, now = ARGV[1], ARGV[2] == '1', tonumber(ARGV[3])
local exp = ARGV[4]
local max_len = tonumber(ARGV[6])
purge(now, PURGE_INLINE)

-- Free means: no live entry (an expired one is cleaned on the way) and no
-- `stm:` key at all (SET NX semantics: a key of another tool blocks the id).
local function free(id, metas_k)
    local m = meta_parse(metas_k)
    if m and not is_alive(m, now) then
        drop(id, m)
        m = nil
    end
    return m == nil and redis.call('EXISTS', k_entry(id)) == 0
end

local id = nil
if not generated then
    if not free(base, redis.call('HGET', K_META, base)) then
        return {R_CONFLICT}
    end
    id = base
else
    -- The lowest free of base, base_2, base_3 ...: metas are read in growing
    -- batches (1, 8, 64 ...) so that the usual case costs one lookup.
    local n, batch = 1, 1
    while not id do
        local ids = {}
        for k = n, n + batch - 1 do
            local cand = base
            if k > 1 then
                cand = base .. '_' .. k
            end
            if #cand > max_len then
                break
            end
            ids[#ids + 1] = cand
        end
        if #ids == 0 or n > 100000 then
            return {R_NOID}
        end
        local metas = redis.call('HMGET', K_META, unpack(ids))
        for k = 1, #ids do
            if free(ids[k], metas[k]) then
                id = ids[k]
                break
            end
        end
        n = n + #ids
        batch = math.min(batch * 8, 1024)
    end
end

local seq = string.format('%d', redis.call('INCR', K_SEQ))
local json = '{"scenario_id":' .. jstr(id) .. ARGV[7]
redis.call('SET', k_entry(id), json, 'PXAT', exp)
redis.call('DEL', k_links(id))
local m = {seq = seq, exp = exp, st = ARGV[5], fin = '-', fb = '0',
           dom = string.match(id, '^[^_]*')}
index_move(id, nil, m)
return {R_OK, id, json, meta_fmt(m)}

--- script: get
#!lua flags=no-writes
-- ARGV: id now_ms -> {0, json, meta, {rule_id...}} | {1}
-- Only a fallback: get() normally runs as a MULTI/EXEC pipeline, which Redis
-- refuses as a whole when over maxmemory; this read-only script still runs.
local id, now = ARGV[1], tonumber(ARGV[2])
local meta = redis.call('HGET', K_META, id)
if not is_alive(meta_parse(meta), now) then
    return {R_NOTFOUND}
end
local json = redis.call('GET', k_entry(id))
if not json then
    return {R_NOTFOUND}
end
return {R_OK, json, meta, redis.call('SMEMBERS', k_links(id))}

--- script: list
#!lua flags=no-writes
-- ARGV: now_ms after_seq(0 = newest) limit budget max_bytes
--       status_slug final_slug feedback(''|0|1) domain   ('' = any)
-- -> {next_seq, id, json, meta, id, json, meta, ...}; next_seq '0' when exhausted.
-- Walks the smallest matching by_seq set downward from after_seq, examining at
-- most `budget` candidates and returning at most `limit` entries and (beyond
-- the first) `max_bytes` of JSON.
local now, after = tonumber(ARGV[1]), ARGV[2]
local limit, budget, max_bytes = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local f_st, f_fin, f_fb, f_dom = ARGV[6], ARGV[7], ARGV[8], ARGV[9]

local cand, best = K_BY_SEQ, nil
local function consider(key)
    local n = redis.call('ZCARD', key)
    if best == nil or n < best then
        cand, best = key, n
    end
end
if f_st ~= '' then consider(P .. 'by_seq:status:' .. f_st) end
if f_fin ~= '' then consider(P .. 'by_seq:final:' .. f_fin) end
if f_fb ~= '' then consider(P .. 'by_seq:feedback:' .. f_fb) end
if f_dom ~= '' then consider(P .. 'by_seq:domain:' .. f_dom) end

local function matches(m)
    return (f_st == '' or m.st == f_st) and (f_fin == '' or m.fin == f_fin)
        and (f_fb == '' or m.fb == f_fb) and (f_dom == '' or m.dom == f_dom)
end

local out = {'0'}
local hi = '+inf'
if after ~= '0' then
    hi = '(' .. after
end
local count, examined, bytes = 0, 0, 0
local last_included = nil
while count < limit and examined < budget do
    local want = math.min(budget - examined, math.max(2 * (limit - count), 32))
    local r = redis.call('ZREVRANGEBYSCORE', cand, hi, '-inf', 'WITHSCORES', 'LIMIT', 0, want)
    local got = #r / 2
    if got == 0 then
        return out
    end
    local ids = {}
    for i = 1, got do
        ids[i] = r[2 * i - 1]
    end
    local metas = redis.call('HMGET', K_META, unpack(ids))
    local need = limit - count
    local m_ids, m_keys, m_meta, m_seq = {}, {}, {}, {}
    local scanned = 0
    for i = 1, got do
        scanned = i
        local m = meta_parse(metas[i])
        if is_alive(m, now) and matches(m) then
            local k = #m_ids + 1
            m_ids[k], m_keys[k], m_meta[k], m_seq[k] = ids[i], k_entry(ids[i]), metas[i], r[2 * i]
            if k == need then
                break
            end
        end
    end
    examined = examined + scanned
    hi = '(' .. r[2 * scanned]
    if #m_ids > 0 then
        local js = redis.call('MGET', unpack(m_keys))
        for k = 1, #m_ids do
            local json = js[k]
            if json then
                if count > 0 and bytes + #json > max_bytes then
                    out[1] = last_included
                    return out
                end
                out[#out + 1] = m_ids[k]
                out[#out + 1] = json
                out[#out + 1] = m_meta[k]
                count = count + 1
                bytes = bytes + #json
                last_included = m_seq[k]
            end
        end
    end
    if scanned == got and got < want then
        return out -- the candidate set is exhausted
    end
end
-- Stopped on the limit or the budget: continue below the last examined
-- candidate, unless nothing is left there.
if #redis.call('ZREVRANGEBYSCORE', cand, hi, '-inf', 'LIMIT', 0, 1) > 0 then
    out[1] = string.sub(hi, 2)
end
return out

--- script: patch
#!lua
-- ARGV: id now_ms now_iso
--       has_text text has_status status_name status_slug has_rationale rationale
--       has_recommendation recommendation set_final final_name('' = null) final_slug('-')
-- -> {0, json, meta, changed_mask, {rule_id...}} | {1} | {4}
-- changed_mask bits follow enum md_stm_field: 1 requirement_text, 2 status,
-- 4 rationale, 8 recommendation, 16 final_status. Nothing changed: the entry
-- (updated_at included) stays as it was.
local id, now = ARGV[1], tonumber(ARGV[2])
purge(now, PURGE_INLINE)
local m = live_meta(id, now, true)
if not m then
    return {R_NOTFOUND}
end
local e, code = load_entry(id, m)
if not e then
    return {code}
end
local ia = e.initial_assessment
local changed = 0
local nm = meta_copy(m)
if ARGV[4] == '1' and e.requirement_text ~= ARGV[5] then
    e.requirement_text = ARGV[5]
    changed = changed + 1
end
if ARGV[6] == '1' and ia.status ~= ARGV[7] then
    ia.status = ARGV[7]
    nm.st = ARGV[8]
    changed = changed + 2
end
if ARGV[9] == '1' and ia.rationale ~= ARGV[10] then
    ia.rationale = ARGV[10]
    changed = changed + 4
end
if ARGV[11] == '1' and ia.recommendation ~= ARGV[12] then
    ia.recommendation = ARGV[12]
    changed = changed + 8
end
if ARGV[13] == '1' then
    local new_final = cjson.null
    if ARGV[14] ~= '' then
        new_final = ARGV[14]
    end
    if e.final_status ~= new_final then
        e.final_status = new_final
        nm.fin = ARGV[15]
        changed = changed + 16
    end
end
if changed == 0 then
    return {R_OK, encode(e), meta_fmt(m), 0, redis.call('SMEMBERS', k_links(id))}
end
e.updated_at = ARGV[3]
local json = encode(e)
redis.call('SET', k_entry(id), json, 'KEEPTTL')
index_move(id, m, nm)
return {R_OK, json, meta_fmt(nm), changed, redis.call('SMEMBERS', k_links(id))}

--- script: feedback
#!lua
-- ARGV: id now_ms now_iso human_feedback_json set_final final_name('' = null) final_slug
-- -> {0, json, meta, {rule_id...}} | {1} | {4}. Without set_final the final status stays.
-- human_feedback_json is the {"decision":…,"rationale":…,"suggestion":…} object,
-- rendered by the daemon. The links come back so that the daemon can write the
-- new answer through its cache.
local id, now, now_iso, hf = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local set_final, final_name = ARGV[5] == '1', ARGV[6]

-- The stored entry with the feedback applied, or nil + code. A canonical entry
-- is spliced as text: its prefix up to "human_feedback" is kept as stored and
-- its tail (final status and timestamps, no client text) rebuilt; decoding and
-- re-encoding the whole entry in Lua cost Redis ~45 us per feedback, the
-- splice ~5 us. The splice points cannot be forged by client text: inside a
-- JSON string every '"' is escaped. Anything else is decoded and re-encoded.
local function with_feedback(json)
    local at = string.find(json, ',"human_feedback":', 1, true)
    -- the tail holds no client text and is < 200 bytes: match only there
    local fin, created, expires = string.match(json,
        ',"final_status":([^,]*),"created_at":("[^"]*"),"updated_at":"[^"]*",' ..
        '"expires_at":("[^"]*")}$', math.max(1, #json - 255))
    if at and fin and string.sub(json, 1, 16) == '{"scenario_id":"' then
        if set_final then
            fin = jstr(final_name ~= '' and final_name or nil)
        end
        return string.sub(json, 1, at - 1) .. ',"human_feedback":' .. hf ..
            ',"final_status":' .. fin .. ',"created_at":' .. created ..
            ',"updated_at":"' .. now_iso .. '","expires_at":' .. expires .. '}'
    end
    local ok, e = pcall(cjson.decode, json)
    local ok2, h = pcall(cjson.decode, hf)
    if not ok or type(e) ~= 'table' or type(e.initial_assessment) ~= 'table' or not ok2 then
        return nil, R_CORRUPT
    end
    e.human_feedback = h
    if set_final then
        e.final_status = final_name ~= '' and final_name or cjson.null
    end
    e.updated_at = now_iso
    return encode(e)
end

purge(now, PURGE_INLINE)
local m = live_meta(id, now, true)
if not m then
    return {R_NOTFOUND}
end
local stored = redis.call('GET', k_entry(id))
if not stored then
    drop(id, m)
    return {R_NOTFOUND}
end
local json, code = with_feedback(stored)
if not json then
    return {code}
end
local nm = meta_copy(m)
nm.fb = '1'
if set_final then
    nm.fin = ARGV[7]
end
redis.call('SET', k_entry(id), json, 'KEEPTTL')
index_move(id, m, nm)
return {R_OK, json, meta_fmt(nm), redis.call('SMEMBERS', k_links(id))}

--- script: ttl
#!lua
-- ARGV: id now_ms expires_ms expires_iso -> {0} | {1} | {4}
-- The new expiry applies to the entry, its links and the index; updated_at
-- is left alone (the content did not change).
local id, now, exp = ARGV[1], tonumber(ARGV[2]), ARGV[3]
purge(now, PURGE_INLINE)
local m = live_meta(id, now, true)
if not m then
    return {R_NOTFOUND}
end
local e, code = load_entry(id, m)
if not e then
    return {code}
end
e.expires_at = ARGV[4]
redis.call('SET', k_entry(id), encode(e), 'PXAT', exp)
redis.call('PEXPIREAT', k_links(id), exp)
local nm = meta_copy(m)
nm.exp = exp
index_move(id, m, nm)
return {R_OK}

--- script: del
#!lua flags=allow-oom
-- ARGV: id now_ms -> {0} | {1}. Removes the entry, its links and its index state.
local id, now = ARGV[1], tonumber(ARGV[2])
purge(now, PURGE_INLINE)
local m = live_meta(id, now, true)
if not m then
    return {R_NOTFOUND}
end
local existed = redis.call('EXISTS', k_entry(id)) == 1
drop(id, m)
if not existed then
    return {R_NOTFOUND}
end
return {R_OK}

--- script: stats
#!lua flags=no-writes
-- ARGV: now_ms slug... (the four status slugs in md_verdict order)
-- -> {total, with_feedback, by_status..., by_final...}
local lo = '(' .. ARGV[1]
local out = {redis.call('ZCOUNT', K_BY_EXP, lo, '+inf'), redis.call('ZCOUNT', K_EXP_FB, lo, '+inf')}
for i = 2, #ARGV do
    out[#out + 1] = redis.call('ZCOUNT', P .. 'by_exp:status:' .. ARGV[i], lo, '+inf')
end
for i = 2, #ARGV do
    out[#out + 1] = redis.call('ZCOUNT', P .. 'by_exp:final:' .. ARGV[i], lo, '+inf')
end
return out

--- script: link_add
#!lua
-- ARGV: id rule_id now_ms -> {0} | {1}. The link set expires with the entry.
local id, now = ARGV[1], tonumber(ARGV[3])
purge(now, PURGE_INLINE)
local m = live_meta(id, now, true)
if not m or redis.call('EXISTS', k_entry(id)) == 0 then
    return {R_NOTFOUND}
end
redis.call('SADD', k_links(id), ARGV[2])
redis.call('PEXPIREAT', k_links(id), m.exp)
return {R_OK}

--- script: links_add
#!lua
-- ARGV: rule_id now_ms id... -> number of live entries linked (missing ids are skipped)
local rule, now = ARGV[1], tonumber(ARGV[2])
purge(now, PURGE_INLINE)
local n = 0
for i = 3, #ARGV do
    local id = ARGV[i]
    local m = live_meta(id, now, true)
    if m and redis.call('EXISTS', k_entry(id)) == 1 then
        redis.call('SADD', k_links(id), rule)
        redis.call('PEXPIREAT', k_links(id), m.exp)
        n = n + 1
    end
end
return n

--- script: links_remove
#!lua flags=allow-oom
-- ARGV: rule_id id... -> number of links removed (missing ones are no error)
local n = 0
for i = 2, #ARGV do
    n = n + redis.call('SREM', k_links(ARGV[i]), ARGV[1])
end
return n

--- script: each
#!lua flags=no-writes
-- ARGV: now_ms after_seq(0 = newest) batch
-- -> {next_seq, id, has_feedback(0|1), {rule_id...}, ...}; next_seq '0' at the end.
local now, after, batch = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local hi = '+inf'
if after ~= '0' then
    hi = '(' .. after
end
local r = redis.call('ZREVRANGEBYSCORE', K_BY_SEQ, hi, '-inf', 'WITHSCORES', 'LIMIT', 0, batch)
local got = #r / 2
local out = {'0'}
if got == 0 then
    return out
end
local ids = {}
for i = 1, got do
    ids[i] = r[2 * i - 1]
end
local metas = redis.call('HMGET', K_META, unpack(ids))
for i = 1, got do
    local m = meta_parse(metas[i])
    if is_alive(m, now) and redis.call('EXISTS', k_entry(ids[i])) == 1 then
        out[#out + 1] = ids[i]
        out[#out + 1] = tonumber(m.fb)
        out[#out + 1] = redis.call('SMEMBERS', k_links(ids[i]))
    end
end
if got == batch then
    out[1] = r[2 * got]
end
return out

--- script: purge
#!lua flags=allow-oom
-- ARGV: now_ms max -> number of expired entries dropped
return purge(tonumber(ARGV[1]), tonumber(ARGV[2]))
