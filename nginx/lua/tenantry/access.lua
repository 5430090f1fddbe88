-- The access phase of every proxied route: drop spoofable headers, resolve the tenant,
-- refuse what must not pass, rate limit, and name the tenant for nginx.conf to pass on.
local cache = require "tenantry.cache"
local host = require "tenantry.host"
local methods = require "tenantry.methods"
local patterns = require "tenantry.patterns"
local quota = require "tenantry.quota"
local ratelimit = require "tenantry.ratelimit"
local request_path = require "tenantry.request_path"
local respond = require "tenantry.respond"
local token = require "tenantry.token"

local ngx = ngx
local byte, sub = string.byte, string.sub
local X = byte("x")

local _M = {}

local UUID, SLUG = patterns.UUID, patterns.SLUG
local PROXIED_METHODS = methods.PROXIED

-- What the owners of a tenant suspended for non-payment may still do: see why, and pay.
-- Matched on the method and the raw path (what the upstream receives), byte for byte.
local BILLING_SUSPENSION_ROUTES = {
  ["GET /billing/subscription"] = true,
  ["POST /billing/portal"] = true,
}
-- Getting a session there at all: the auth service gives one to the tenant's owners only
-- (services/auth/src/sessions.ts), so these pass without a token, on the tenant's own host too.
local BILLING_SUSPENSION_SESSION_ROUTES = {
  ["POST /auth/login"] = true,
  ["POST /auth/refresh"] = true,
}
local BILLING_SUSPENSION_MESSAGE =
  "this tenant is suspended for billing: its owners can still reach GET /billing/subscription and POST /billing/portal"

-- A header sent more than once arrives as a table; it is never a valid tenant reference.
-- rawget: the table's keys are already lower case, and its __index (which normalises a
-- missing name with string operations) would run for every header a request lacks.
local function single(headers, name)
  local value = rawget(headers, name)
  if type(value) == "table" then
    return nil, name .. " was sent more than once"
  end
  return value
end

-- nginx.conf's proxy_set_header replaces X-Request-Id, X-Tenant-Id, X-Tenant-Slug and
-- X-Hasura-Tenant-Id; every other X-Hasura-* header a client sends is dropped here.
-- A byte test first and a plain comparison, not a pattern: this runs for every header of
-- every request, and patterns are not compiled by the JIT.
local function strip_client_headers(headers)
  for name in pairs(headers) do
    if byte(name, 1) == X and sub(name, 1, 9) == "x-hasura-" then
      ngx.req.clear_header(name)
    end
  end
end
_M.strip_client_headers = strip_client_headers

-- The first source that names a tenant wins: header id, header slug, custom domain,
-- subdomain, token claim. Returns the lookup (by, value) or nil; refuses malformed input.
-- A custom domain's tenant comes back resolved ("resolved", tenant).
local function resolver_unavailable(graphql, what, err)
  return respond.refuse(graphql, "resolver_unavailable", what .. " cannot be resolved right now: " .. err)
end

local function tenant_reference(headers, token_tenant, graphql)
  local id, err = single(headers, "x-tenant-id")
  if err then return respond.refuse(graphql, "invalid_tenant_header", err) end
  if id then
    id = id:lower()
    if not id:find(UUID) then
      return respond.refuse(graphql, "invalid_tenant_header", "X-Tenant-ID must be a UUID")
    end
    return "id", id
  end

  local slug
  slug, err = single(headers, "x-tenant-slug")
  if err then return respond.refuse(graphql, "invalid_tenant_header", err) end
  if slug then
    if #slug > 63 or not slug:find(SLUG) or slug:find("--", 1, true) then
      return respond.refuse(graphql, "invalid_tenant_header", "X-Tenant-Slug is not a valid tenant slug")
    end
    return "slug", slug
  end

  -- $host, not the Host header: an absolute-form request line (`GET http://b.example/…`)
  -- names the host nginx uses and nginx.conf forwards, whatever the Host header says.
  local kind, name = host.classify(host.normalise(ngx.var.host))
  if kind == "domain" then
    -- Any host can point at the edge; only a verified domain names a tenant.
    local tenant, lookup_err = cache.lookup("domain", name)
    if tenant == nil then
      return resolver_unavailable(graphql, "the tenant", lookup_err)
    end
    if tenant then return "resolved", tenant end
  elseif kind == "subdomain" then
    return "slug", name
  end

  if token_tenant then
    if not token_tenant:find(UUID) then
      return respond.refuse(graphql, "invalid_token", "the token's tenant claim is not a UUID")
    end
    return "id", token_tenant
  end
  return nil
end

-- A user's token stops working within seconds of the user leaving the tenant or of a
-- change to their role: the member's answer is cached for member_ttl only. Returns the
-- member ({ role, … }) when the token may pass.
local function check_membership(graphql, tenant_id, claims)
  if not claims.user_id:find(UUID) then
    return respond.refuse(graphql, "invalid_token", "the token's user claim is not a UUID")
  end
  local member, err = cache.lookup("member", tenant_id .. ":" .. claims.user_id)
  if member == nil then
    return resolver_unavailable(graphql, "the membership", err)
  end
  if not member then
    return respond.refuse(graphql, "token_revoked", "the token's user is no longer a member of this tenant")
  end
  -- Both are whole seconds: a token issued in the very second of the change may predate
  -- it, so that second is refused too (the auth service waits it out before issuing).
  if not claims.issued_at or claims.issued_at <= member.tokens_valid_after then
    return respond.refuse(graphql, "token_revoked", "the member's role changed after this token was issued; get a new one")
  end
  return member
end

-- Whether this request may reach a tenant suspended for billing, before its membership is
-- checked: one of the billing routes above with a user's own token (not an API key's), or,
-- without a token, a login or refresh.
local function billing_suspension_route(claims)
  local route = ngx.req.get_method() .. " " .. ngx.var.request_uri:match("^[^?]*")
  if not claims then
    return BILLING_SUSPENSION_SESSION_ROUTES[route] == true
  end
  if not claims.user_id or claims.api_key then
    return false
  end
  return BILLING_SUSPENSION_ROUTES[route] == true
end

-- Headers for the client, set before the upstream answers: nginx adds the upstream's to them.
local function set_headers(headers)
  if headers then
    for name, value in pairs(headers) do
      ngx.header[name] = value
    end
  end
end

-- options.tenant: "required", "optional" or "none"; options.graphql: answer in GraphQL's shape.
function _M.run(options)
  local graphql = options.graphql
  if not PROXIED_METHODS[ngx.req.get_method()] then
    return respond.refuse(graphql, "method_not_allowed", "this method is not served here", { Allow = methods.ALLOW })
  end
  local path_problem = request_path.problem(ngx.var.request_uri)
  if path_problem then
    return respond.refuse(graphql, "bad_request", path_problem)
  end
  local headers, err = ngx.req.get_headers(0)
  if err then
    return respond.refuse(graphql, "bad_request", "cannot read the request headers")
  end
  strip_client_headers(headers)
  if options.tenant == "none" then
    return
  end

  local authorization
  authorization, err = single(headers, "authorization")
  if err then return respond.refuse(graphql, "bad_request", err) end
  local has_token, claims, token_err = token.claims(authorization)
  if has_token and token_err then
    return respond.refuse(graphql, "invalid_token", token_err)
  end
  local token_tenant = claims and claims.tenant_id
  -- Anonymous requests spend no tenant's quota; an address gets a limit of its own instead.
  if not has_token then
    local allowed, limit_headers, retry_after = ratelimit.allow_anonymous()
    if not allowed then
      limit_headers["Retry-After"] = retry_after
      return respond.refuse(graphql, "rate_limited", "too many requests from this address", limit_headers)
    end
  end

  local by, value = tenant_reference(headers, token_tenant, graphql)
  local tenant
  local via_domain = by == "resolved"
  if via_domain then
    tenant = value
  elseif by then
    local lookup_err
    tenant, lookup_err = cache.lookup(by, value)
    if tenant == nil then
      return resolver_unavailable(graphql, "the tenant", lookup_err)
    end
    if not tenant then
      return respond.refuse(graphql, "tenant_not_found", "no such tenant")
    end
  end

  if not tenant then
    if options.tenant == "required" then
      return respond.refuse(graphql, "tenant_required",
        "name the tenant with X-Tenant-Slug, X-Tenant-ID, its host name, or a token scoped to it")
    end
    return
  end

  if tenant.status == "deleted" then
    return respond.refuse(graphql, "tenant_not_found", "no such tenant")
  end
  -- The domain row is kept when the plan loses the feature: it serves again when it returns.
  -- Anything but true refuses, so an answer that does not say is not taken for a yes.
  if via_domain and tenant.custom_domains ~= true then
    return respond.refuse(graphql, "custom_domain_not_in_plan")
  end
  local billing_suspension = tenant.status == "suspended" and tenant.suspension_reason == "billing"
  if tenant.status == "suspended" then
    if not billing_suspension then
      return respond.refuse(graphql, "tenant_suspended", "this tenant is suspended")
    end
    if not billing_suspension_route(claims) then
      return respond.refuse(graphql, "tenant_suspended", BILLING_SUSPENSION_MESSAGE)
    end
  end
  if token_tenant and token_tenant ~= tenant.id then
    return respond.refuse(graphql, "tenant_mismatch", "the token belongs to another tenant than the one this request names")
  end
  if claims and claims.user_id then
    local member = check_membership(graphql, tenant.id, claims)
    -- Only the owners pay: every other member of a tenant suspended for billing is refused.
    if billing_suspension and member.role ~= "owner" then
      return respond.refuse(graphql, "tenant_suspended", BILLING_SUSPENSION_MESSAGE)
    end
  end

  local allowed, limit_headers, retry_after = ratelimit.allow(tenant)
  if not allowed then
    limit_headers = limit_headers or {}
    limit_headers["Retry-After"] = retry_after
    return respond.refuse(graphql, "rate_limited", "too many requests for this tenant", limit_headers)
  end
  set_headers(limit_headers)

  -- Every request with a token that reaches a tenant's upstream counts toward its quota
  -- (a WebSocket upgrade once: it is one request here).
  if has_token then
    local quota_headers
    allowed, quota_headers, retry_after = quota.charge(tenant)
    if not allowed then
      quota_headers["Retry-After"] = retry_after
      return respond.refuse(graphql, "quota_exceeded", "this tenant has used its API requests for the month", quota_headers)
    end
    set_headers(quota_headers)
  end

  -- nginx.conf turns these into the X-Tenant-Id, X-Hasura-Tenant-Id and X-Tenant-Slug headers.
  ngx.var.tenant_id = tenant.id
  ngx.var.tenant_slug = tenant.slug
end

return _M
