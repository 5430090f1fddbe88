-- The access phase of the S3 host (s3.<BASE_DOMAIN>): no tenant, no quota, no rate limit.
-- A presigned URL's signature is the authority there, and the S3 server checks it: the
-- edge only keeps its own headers to itself and, without an S3 server, says so.
local access = require "tenantry.access"
local config = require "tenantry.config"
local respond = require "tenantry.respond"

local ngx = ngx

local _M = {}

function _M.access()
  if not config.values.s3_configured then
    return respond.refuse(false, "upstream_unavailable", "object storage is not configured on this edge")
  end
  local headers, err = ngx.req.get_headers(0)
  if err then
    return respond.refuse(false, "bad_request", "cannot read the request headers")
  end
  -- X-Tenant-Id, X-Tenant-Slug, X-Hasura-Tenant-Id and X-Request-Id are replaced in nginx.conf.
  access.strip_client_headers(headers)
end

return _M
