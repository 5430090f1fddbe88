-- The methods the edge proxies: what the services and Hasura answer (and CORS preflights).
-- Any other method is refused by the edge itself, so a client never gets an upstream's
-- own refusal of it (Node answers an unknown method with a bare 400, in no shape of ours).
local _M = {}

_M.PROXIED = {
  GET = true, HEAD = true, POST = true, PUT = true, PATCH = true, DELETE = true, OPTIONS = true,
}

-- The Allow header of every 405 the edge answers.
_M.ALLOW = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"

return _M
