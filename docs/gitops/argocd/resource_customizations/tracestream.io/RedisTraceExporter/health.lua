-- Argo CD health check for tracestream.io/RedisTraceExporter.
--
-- The operator reports kstatus conditions: Ready (the summary: pods ready and Redis reachable),
-- Reconciling and Stalled (present only while True), and status.observedGeneration. This script
-- reads only those, so that Argo CD and Flux (kstatus) agree wherever kstatus can tell.
--
-- It uses the Lua base library only: Argo CD runs scripts from argocd-cm without the standard
-- libraries unless resource.customizations.useOpenLibs is set.

-- health is the answer Argo CD reads.
local function health(status, message)
  return { status = status, message = message }
end

local function find(conditions, conditionType)
  for _, c in ipairs(conditions) do
    if c.type == conditionType then
      return c
    end
  end
  return nil
end

local function isTrue(c)
  return c ~= nil and c.status == "True"
end

-- describe is a condition's message, or its reason when the message is empty.
local function describe(c, fallback)
  if c.message ~= nil and c.message ~= "" then
    return c.message
  end
  if c.reason ~= nil and c.reason ~= "" then
    return c.reason
  end
  return fallback
end

if obj.status == nil or obj.status.conditions == nil or #obj.status.conditions == 0 then
  return health("Progressing", "Waiting for the operator to report status")
end

local conditions = obj.status.conditions

-- The operator sets status.observedGeneration once it has applied a generation or stalled on it,
-- so until then the conditions describe an older spec.
local generation = obj.metadata.generation
local observedGeneration = obj.status.observedGeneration or 0
if generation ~= nil and observedGeneration < generation then
  return health("Progressing", "Waiting for the operator to observe generation " .. tostring(generation))
end

-- The first of these conditions that is True decides, in this order: a spec error (missing Secret
-- or key, invalid spec) stalls the resource until the user fixes it; Reconciling wins over Ready,
-- as in kstatus (the operator never sets both to True).
local decisive = {
  { type = "Stalled", status = "Degraded" },
  { type = "Reconciling", status = "Progressing" },
  { type = "Ready", status = "Healthy" },
}
for _, d in ipairs(decisive) do
  local c = find(conditions, d.type)
  if isTrue(c) then
    return health(d.status, describe(c, d.type))
  end
end

local ready = find(conditions, "Ready")
if ready ~= nil and ready.status == "False" then
  -- Not progressing and not ready: the operator cannot use Redis (unreachable, credentials or TLS
  -- refused, an error), which the Ready reason names even when it also keeps the pods unready.
  return health("Degraded", describe(ready, "Not ready"))
end

return health("Progressing", "Waiting for the Ready condition")
