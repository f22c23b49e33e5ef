-- wrk script of medsettle.bench.layers.http (bench all, benchmarks/test_centre_bench.py): every request is a
-- 2102 pharmacy sale with a msgid of its own (so none is answered from the idempotency table), for a person
-- and a class-A item taken in turn from the files the layer writes. A reply whose infcode is not 0 is printed
-- as "REFUSED ...", and the layer fails on it.
-- Every request is signed as at the platform's gateway (x-tif-* headers); wrk's Lua cannot hash, so each
-- thread takes its requests' timestamp, nonce and signature in turn from the file the benchmark made for it.
local dir = os.getenv("MEDSETTLE_WRK_DIR")
local sign_no = os.getenv("MEDSETTLE_SIGN_NO")
local paasid = os.getenv("MEDSETTLE_PAASID")
local signatures = {}
local persons, codes = {}, {}
for line in io.lines(dir .. "/persons.txt") do  -- "psn_no certno": the sale names the person by ID number (02)
  local psn, certno = line:match("^(%S+) (%S+)$")
  persons[#persons + 1] = {psn, certno}
end
for line in io.lines(dir .. "/codes.txt") do codes[#codes + 1] = line end

local thread_tag = 0
local counter = 0

function setup(thread)
  thread_tag = thread_tag + 1
  thread:set("tag", thread_tag)
end

function init(args)
  for line in io.lines(dir .. "/nonces-" .. tag .. ".txt") do
    signatures[#signatures + 1] = line
  end
end

function request()
  counter = counter + 1
  local person = persons[(counter * 7919) % #persons + 1]
  local body = string.format(
    '{"infno":"2102","msgid":"W%s-%d-%d","fixmedins_code":"P13010000001","sign_no":"%s",' ..
    '"inf_time":"2026-03-02 10:00:00","input":{"data":{"psn_no":"%s","mdtrt_cert_type":"02",' ..
    '"mdtrt_cert_no":"%s","med_type":"41",' ..
    '"acct_used_flag":"1"},"feedetail":[{"feedetl_sn":"1","med_list_codg":"%s","pric":"12.50","cnt":"2"}]}}',
    os.time(), tag or 0, counter, sign_no, person[1], person[2], codes[counter % #codes + 1])
  -- past the file's last line the nonces repeat, and the gateway refuses them (the benchmark then fails)
  local timestamp, nonce, signature = signatures[(counter - 1) % #signatures + 1]:match("^(%S+) (%S+) (%S+)$")
  local headers = {
    ["Content-Type"] = "application/json",
    ["x-tif-paasid"] = paasid,
    ["x-tif-timestamp"] = timestamp,
    ["x-tif-nonce"] = nonce,
    ["x-tif-signature"] = signature,
  }
  return wrk.format("POST", "/", headers, body)
end

function response(status, headers, body)
  if not body:find('"infcode":%s*0,') then
    io.write("REFUSED " .. body:sub(1, 300) .. "\n")
  end
end
